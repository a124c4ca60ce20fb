"""The per-key rate limit: 429 with Retry-After, shared across API processes through
Redis, per process without it; health endpoints never limited."""

from __future__ import annotations

import time

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
        # One request every 4 s (a burst of one): slow test machines cannot refill it.
        body = {"max_requests_per_s": 0.25}
        assert client.patch("/v1/operator/tenants/acme/quotas", json=body, headers=OPERATOR)
        codes = [client.get("/v1/usage", headers=tenant.auth()).status_code for _ in range(3)]
        assert codes == [200, 429, 429]
        refused = client.get("/v1/usage", headers=tenant.auth())
        assert refused.headers["Retry-After"] in {"1", "2", "3", "4"}
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and "0.25 requests per second" in error["message"]
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
        body = {"max_requests_per_s": 0.25}
        one.patch("/v1/operator/tenants/acme/quotas", json=body, headers=OPERATOR)
        auth = tenant.auth()
        assert one.get("/v1/usage", headers=auth).status_code == 200
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


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_client_waits_out_a_429_and_goes_on(db_url, tmp_path, engine):
    from registry.client.api import ClientError, RegistryClient

    app = _app(db_url, tmp_path)
    tenant = Tenant(app, "acme")
    slept = []
    with TestClient(app) as http:
        body = {"max_requests_per_s": 0.25}
        http.patch("/v1/operator/tenants/acme/quotas", json=body, headers=OPERATOR)
        client = RegistryClient(api_key=tenant.keys["admin"], http=http, sleep=slept.append)
        client.list_keys()
        with pytest.raises(ClientError) as refused:  # the fake sleep waited for nothing
            client.create_key("k", ["read"])
        assert refused.value.status == 429 and len(slept) == client.retries
        slept.clear()
        client._sleep = lambda s: (slept.append(s), time.sleep(s))
        assert client.create_key("k", ["read"])["name"] == "k"  # a POST too: nothing ran
        assert len(slept) == 1 and 1 <= slept[0] <= 4
