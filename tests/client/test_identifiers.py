"""User ids and names end to end: RegistryClient → uvicorn → the app (docs/api.md,
"Identifiers and names"). Every entry point refuses an id outside the rule with 422 naming
it; a legal id with @ . : + = works through upload, submit, list, publish and resolve."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from registry.adapters import service as adapters
from registry.client.api import ClientError, RegistryClient
from registry.db import session_scope
from registry.jobs.models import Dataset
from tests.api import helpers
from tests.cli.conftest import live_url  # noqa: F401
from tests.client.conftest import app, dispatcher, settings, tenant  # noqa: F401

BAD_USER_IDS = [
    "org/alice",
    "../etc",
    "..",
    ".",
    "a?b#c",
    "a#b",
    "100%",
    "a%2Fb",
    "a b",
    " alice",
    "alice\n",
    "a..b",
    ".hidden",
    "l\u0456ve",  # Cyrillic і
    "\uff41lice",  # full-width a
    "é",
    "a\x00b",
    "x" * 129,
]
BAD_NAMES = ["l\u0456ve", "\uff4c\uff49\uff56\uff45", "Live", "-live", "a b", "a%b", "x" * 65]
LEGAL_USER_ID = "alice.smith@corp.example:eu+1=a_b-c"


@pytest.fixture
def registry(live_url, tenant):  # noqa: F811
    with RegistryClient(live_url, tenant.keys["admin"], retries=0) as client:
        yield client


@pytest.fixture
def ready(registry):
    weights = b"weights"
    sha256 = hashlib.sha256(weights).hexdigest()
    registry.request("PUT", f"/v1/base-models/files/{sha256}", content=weights)
    base = registry.register_base_model(
        {
            "name": "minilm",
            "weights_hash": "sha256:" + "1" * 64,
            "files": [{"path": "model.safetensors", "sha256": sha256, "size": len(weights)}],
            "architecture": "Bert",
            "layers": helpers.LAYERS,
        }
    )
    projection = registry.register_projection(
        base["id"],
        {
            "seed": 7,
            "r": 16,
            "max_d_in": 384,
            "max_d_out": 384,
            "generator": "g",
            "fingerprint": "sha256:" + "2" * 64,
            "torch_version": "2.13.0",
        },
    )
    return base, projection


def _refused(call, what: str) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.status == 422, (what, info.value)
    return info.value


def _names_rule(error: ClientError, what: str) -> None:
    assert f"{what} must be 1-" in error.message, error.message


@pytest.mark.parametrize("user_id", BAD_USER_IDS)
def test_a_user_id_outside_the_rule_is_422_everywhere_it_enters(registry, ready, app, user_id):  # noqa: F811
    base, projection = ready
    dataset = registry.upload_dataset("alice", "sequence-classification", helpers.dataset_bytes())
    body = helpers.job_body(base, projection, dataset, user_id=user_id)
    calls = {
        "upload": lambda: registry.upload_dataset(
            user_id, "sequence-classification", helpers.dataset_bytes()
        ),
        "submit": lambda: registry.submit_job(body),
        "adapters": lambda: registry.list_adapters(user_id),
        "resolve": lambda: registry.resolve(user_id),
        "jobs": lambda: registry.list_jobs(user_id=user_id),
    }
    for what, call in calls.items():
        error = _refused(call, what)
        if "\x00" not in user_id:  # NUL may be refused earlier, at the edge, in other words
            _names_rule(error, "a user id")
    with session_scope(app.state.session_factory) as session:
        assert session.query(Dataset).count() == 1  # only alice's
    assert registry.list_jobs()["items"] == []


def test_a_legal_user_id_works_end_to_end(registry, ready, app, tenant):  # noqa: F811
    base, projection = ready
    dataset = registry.upload_dataset(
        LEGAL_USER_ID, "sequence-classification", helpers.dataset_bytes()
    )
    assert dataset["user_id"] == LEGAL_USER_ID
    job = registry.submit_job(
        helpers.job_body(base, projection, dataset, adapter_name="chat.v2_eu-1")
    )
    assert job["user_id"] == LEGAL_USER_ID
    assert [j["id"] for j in registry.list_jobs(user_id=LEGAL_USER_ID)["items"]] == [job["id"]]
    listed = registry.list_adapters(LEGAL_USER_ID)
    assert [(a["id"], a["name"]) for a in listed] == [(job["adapter_id"], "chat.v2_eu-1")]
    with session_scope(app.state.session_factory) as session:  # as a finished job would
        adapter = adapters.get_adapter(session, tenant.id, job["adapter_id"])
        adapters.create_version(session, adapter, blob_sha256="3" * 64, size_bytes=1)
    registry.publish(job["adapter_id"], "canary.1", 1)
    manifest = registry.resolve(LEGAL_USER_ID, adapter="chat.v2_eu-1", alias="canary.1")
    assert (manifest.user_id, manifest.version) == (LEGAL_USER_ID, 1)
    assert registry.history(job["adapter_id"], "canary.1")[0]["user_id"] == LEGAL_USER_ID


@pytest.mark.parametrize("name", BAD_NAMES)
def test_adapter_and_alias_names_outside_the_rule_are_422(registry, ready, name):
    base, projection = ready
    dataset = registry.upload_dataset("alice", "sequence-classification", helpers.dataset_bytes())
    job = registry.submit_job(helpers.job_body(base, projection, dataset))
    body = helpers.job_body(base, projection, dataset, adapter_name=name)
    _names_rule(_refused(lambda: registry.submit_job(body), "submit"), "an adapter name")
    _names_rule(
        _refused(lambda: registry.resolve("alice", adapter=name), "resolve"), "an adapter name"
    )
    _names_rule(_refused(lambda: registry.resolve("alice", alias=name), "resolve"), "an alias name")
    for what, call in {
        "publish": lambda: registry.publish(job["adapter_id"], name, 1),
        "get": lambda: registry.get_alias(job["adapter_id"], name),
        "rollback": lambda: registry.rollback(job["adapter_id"], name),
        "history": lambda: registry.history(job["adapter_id"], name),
    }.items():
        _names_rule(_refused(call, what), "an alias name")


@pytest.mark.parametrize(
    ("user_id", "raw_path"),
    [
        ("org/alice", b"/v1/users/org%2Falice/adapters"),
        ("..", b"/v1/users/%2E%2E/adapters"),
        ("a?b#c", b"/v1/users/a%3Fb%23c/adapters"),
        ("100%", b"/v1/users/100%25/adapters"),
        ("a b", b"/v1/users/a%20b/adapters"),
        ("a.b@c:d+e=f", b"/v1/users/a.b%40c%3Ad%2Be%3Df/adapters"),
    ],
)
def test_the_client_sends_every_id_as_one_encoded_path_segment(user_id, raw_path):
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(200, json={"items": [], "next_cursor": None})

    with RegistryClient("http://registry.test", transport=httpx.MockTransport(answer)) as client:
        client.list_adapters(user_id)
    assert seen == [raw_path]
