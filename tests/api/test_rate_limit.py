"""The per-key rate limit: 429 with Retry-After, shared across API processes through
Redis, per process without it; health endpoints never limited."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry.api.rate_limit import gcra
from registry.config import Settings
from registry.main import create_app
from tests.api.conftest import Tenant

OPERATOR = {"Authorization": "Bearer op"}


def test_gcra_admits_a_burst_of_rate_then_one_per_interval():
    tat, admitted = 0.0, []
    for now in (10.0, 10.0, 10.0, 10.4, 10.5, 10.5):
        tat, wait = gcra(tat, now, rate=2.0)
        admitted.append(wait == 0)
    assert admitted == [True, True, False, False, True, False]
    tat, wait = gcra(0.0, 0.0, rate=0.25)  # below 1/s: a burst of one, then every 4 s
    assert wait == 0 and gcra(tat, 1.0, rate=0.25)[1] == pytest.approx(3.0)


def _app(db_url, tmp_path, **overrides):
    settings = Settings(
        _env_file=None,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        operator_token="op",
        **overrides,
    )
    return create_app(settings)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_in_process_limit_429_with_retry_after_health_never_limited(db_url, tmp_path, engine):
    app = _app(db_url, tmp_path)
    assert not app.state.rate_limiter.shared
    tenant = Tenant(app, "acme")
    with TestClient(app) as client:
        assert client.get("/v1/keys", headers=tenant.auth()).status_code == 200  # no limit
        body = {"max_requests_per_s": 2}
        assert client.patch("/v1/operator/tenants/acme/quotas", json=body, headers=OPERATOR)
        codes = [client.get("/v1/usage", headers=tenant.auth()).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        refused = client.get("/v1/usage", headers=tenant.auth())
        assert refused.headers["Retry-After"] == "1"
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and "2 requests per second" in error["message"]
        assert error["details"]["limit"] == "max_requests_per_s"
        # Per key: the tenant's other key has its own budget.
        assert client.get("/v1/usage", headers=tenant.auth("read")).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            assert all(client.get(path).status_code == 200 for _ in range(5)), path


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_redis_shares_one_budget_per_key_across_api_processes(db_url, tmp_path, engine):
    first = _app(db_url, tmp_path, broker_url="redis://127.0.0.1:6379/0")
    second = _app(db_url, tmp_path, broker_url="redis://127.0.0.1:6379/0")
    assert first.state.rate_limiter.shared
    tenant = Tenant(first, "acme")
    with TestClient(first) as one, TestClient(second) as two:
        body = {"max_requests_per_s": 2}
        one.patch("/v1/operator/tenants/acme/quotas", json=body, headers=OPERATOR)
        auth = tenant.auth()
        assert one.get("/v1/usage", headers=auth).status_code == 200
        assert two.get("/v1/usage", headers=auth).status_code == 200
        refused = two.get("/v1/usage", headers=auth)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert one.get("/v1/usage", headers=auth).status_code == 429


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unreachable_redis_admits_requests(db_url, tmp_path, engine):
    app = _app(db_url, tmp_path, broker_url="redis://127.0.0.1:1/0")
    tenant = Tenant(app, "acme")
    with TestClient(app) as client:
        body = {"max_requests_per_s": 1}
        client.patch("/v1/operator/tenants/acme/quotas", json=body, headers=OPERATOR)
        codes = {client.get("/v1/usage", headers=tenant.auth()).status_code for _ in range(3)}
    assert codes == {200}
