"""Retries never apply a request twice: against the real app, with the first answer lost
after the handler ran (a proxy's 502, or a connection dropped mid-answer)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry.client.api import ClientError, RegistryClient
from registry.db import session_scope
from registry.jobs.models import Dataset, Job
from tests.api.helpers import (
    dataset_bytes,
    job_body,
    register_base_model,
    register_projection,
    upload_dataset,
)


class LoseFirstAnswer:
    """ASGI wrapper: the first `method path` request runs to the end in the app, then its
    answer is thrown away and a 502 goes out instead, as a proxy whose upstream died."""

    def __init__(self, app, method: str, path: str) -> None:
        self.app, self.method, self.path = app, method, path
        self.lost: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or self.lost
            or (scope["method"], scope["path"]) != (self.method, self.path)
        ):
            await self.app(scope, receive, send)
            return

        async def discard(message) -> None:
            self.lost.append(message)

        await self.app(scope, receive, discard)
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b"bad gateway"})


class DropFirstAnswer(httpx.BaseTransport):
    """An httpx transport into the app (through FastAPI's TestClient): the first matching
    request runs in the app, then the connection breaks before its answer arrives."""

    def __init__(self, app_client: TestClient, method: str, path: str) -> None:
        self.app_client, self.method, self.path = app_client, method, path
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.app_client.request(
            request.method, str(request.url), headers=dict(request.headers), content=request.read()
        )
        if not self.dropped and (request.method, request.url.path) == (self.method, self.path):
            self.dropped += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return httpx.Response(
            answer.status_code, headers=answer.headers.multi_items(), content=answer.content
        )


def _count(app, model) -> int:
    with session_scope(app.state.session_factory) as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def prepared(client, tenant):
    base = register_base_model(client, tenant.auth())
    projection = register_projection(client, tenant.auth(), base["id"])
    dataset = upload_dataset(client, tenant.auth())
    return job_body(base, projection, dataset)


def _registry(http: httpx.Client, tenant) -> RegistryClient:
    return RegistryClient(api_key=tenant.keys["admin"], http=http, sleep=lambda _: None)


def test_submit_after_a_lost_502_makes_exactly_one_job(app, client, tenant, prepared):
    proxy = LoseFirstAnswer(app, "POST", "/v1/jobs")
    with TestClient(proxy) as http:
        job = _registry(http, tenant).submit_job(prepared)
    assert proxy.lost, "the first answer was not lost: the test proves nothing"
    assert _count(app, Job) == 1 and job["state"] == "queued"


def test_submit_after_a_dropped_connection_makes_exactly_one_job(app, client, tenant, prepared):
    transport = DropFirstAnswer(client, "POST", "/v1/jobs")
    with httpx.Client(transport=transport, base_url="http://registry.test") as http:
        job = _registry(http, tenant).submit_job(prepared)
    assert transport.dropped == 1
    assert _count(app, Job) == 1 and job["id"]


def test_post_without_idempotency_key_is_not_retried(app, client, tenant):
    proxy = LoseFirstAnswer(app, "POST", "/v1/datasets")
    with TestClient(proxy) as http, pytest.raises(ClientError) as info:
        _registry(http, tenant).upload_dataset("alice", "sequence-classification", dataset_bytes())
    assert info.value.status == 502
    assert _count(app, Dataset) == 1  # stored once; the caller decides about a second try


def test_lost_answer_to_a_non_idempotent_post_says_it_may_have_been_applied(app, client, tenant):
    transport = DropFirstAnswer(client, "POST", "/v1/keys")
    http = httpx.Client(transport=transport, base_url="http://registry.test")
    with http, pytest.raises(ClientError) as info:
        _registry(http, tenant).create_key("ci", ["read"])
    assert info.value.code == "connection_error" and "may have been applied" in info.value.message
    assert transport.dropped == 1
