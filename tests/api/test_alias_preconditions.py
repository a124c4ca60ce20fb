"""If-Match / If-None-Match on alias writes follow RFC 9110 §13.1 (docs/api.md)."""

from __future__ import annotations

import pytest

from registry.api.etags import EntityTag, parse_etags
from tests.api import helpers


@pytest.fixture
def alias_url(app, tenant):
    blobs = [helpers.safetensors_blob([float(i)]) for i in range(3)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    return f"/v1/adapters/{adapter_id}/aliases/live"


def _put(client, tenant, url, version, **headers):
    return client.put(url, json={"version": version}, headers={**tenant.auth("train"), **headers})


def _alias(client, tenant, url):
    return client.get(url, headers=tenant.auth("read"))


def test_if_match_star_on_a_missing_alias_is_412_and_creates_nothing(client, tenant, alias_url):
    refused = _put(client, tenant, alias_url, 1, **{"If-Match": "*"})
    assert refused.status_code == 412, refused.text
    assert refused.json()["error"]["code"] == "precondition_failed"
    assert "If-None-Match: *" in refused.json()["error"]["message"]
    assert _alias(client, tenant, alias_url).status_code == 404
    assert _put(client, tenant, alias_url, 1).status_code == 200
    moved = _put(client, tenant, alias_url, 2, **{"If-Match": "*"})
    assert moved.status_code == 200 and moved.json()["generation"] == 2


def test_if_none_match_star_on_an_existing_alias_is_412(client, tenant, alias_url):
    assert _put(client, tenant, alias_url, 1, **{"If-None-Match": "*"}).status_code == 200
    refused = _put(client, tenant, alias_url, 2, **{"If-None-Match": "*"})
    assert refused.status_code == 412, refused.text
    assert refused.json()["error"]["details"] == {"current_generation": 1}
    assert _alias(client, tenant, alias_url).json()["version"] == 1


def test_a_weak_etag_never_matches(client, tenant, alias_url):
    created = _put(client, tenant, alias_url, 1)
    assert created.headers["etag"] == '"1"'
    for header in ('W/"1"', ' W/"1" '):
        refused = _put(client, tenant, alias_url, 2, **{"If-Match": header})
        assert refused.status_code == 412, refused.text
        assert "strongly" in refused.json()["error"]["message"]
    rolled = client.post(
        f"{alias_url}/rollback",
        json={"to_version": 3},
        headers={**tenant.auth(), "If-Match": 'W/"1"'},
    )
    assert rolled.status_code == 412
    assert _alias(client, tenant, alias_url).json()["version"] == 1
    assert _put(client, tenant, alias_url, 2, **{"If-Match": '"1"'}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"If-Match": "1"},  # unquoted
        {"If-Match": '"1'},
        {"If-Match": '"abc"'},
        {"If-Match": '"0"'},  # generations start at 1; create-only is If-None-Match: *
        {"If-Match": '"-1"'},
        {"If-Match": '"99999999999"'},
        {"If-Match": '"1", "2"'},
        {"If-Match": '"1" x'},
        {"If-Match": ""},
        {"If-None-Match": '"1"'},
        {"If-Match": '"1"', "If-None-Match": "*"},
    ],
)
def test_malformed_preconditions_are_400_and_change_nothing(client, tenant, alias_url, headers):
    response = _put(client, tenant, alias_url, 2, **headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_if_match" and "If-" in error["message"]
    assert _alias(client, tenant, alias_url).status_code == 404  # not created either
    _put(client, tenant, alias_url, 1)
    assert _put(client, tenant, alias_url, 2, **headers).status_code == 400
    alias = _alias(client, tenant, alias_url).json()
    assert (alias["alias"], alias["version"], alias["generation"]) == ("live", 1, 1)
    assert alias["manifest"]["version"] == 1


def test_a_stale_generation_stays_409_with_the_current_one(client, tenant, alias_url):
    _put(client, tenant, alias_url, 1)
    stale = _put(client, tenant, alias_url, 2, **{"If-Match": '"2"'})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_generation"
    assert stale.json()["error"]["details"]["current_generation"] == 1
    missing = _put(client, tenant, alias_url.replace("/live", "/beta"), 1, **{"If-Match": '"1"'})
    assert missing.status_code == 409 and missing.json()["error"]["code"] == "stale_generation"


def test_if_none_match_on_reads_uses_weak_comparison(client, tenant, alias_url):
    blob_url = alias_url.replace("/aliases/live", "/versions/1/blob")
    etag = client.get(blob_url, headers=tenant.auth()).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get(blob_url, headers={**tenant.auth(), "If-None-Match": header})
        assert response.status_code == 304, header
    for header in ('"other"', "garbage"):
        response = client.get(blob_url, headers={**tenant.auth(), "If-None-Match": header})
        assert response.status_code == 200, header


def test_parse_etags():
    assert parse_etags("*") == "*"
    assert parse_etags(' "a" ,W/"b",, ') == [EntityTag("a"), EntityTag("b", weak=True)]
    assert parse_etags('""') == [EntityTag("")]
    for malformed in ("", "a", '"a', 'w/"a"', '"a" "b"', '"a"b', '"a\nb"', '"a"\n', '*, "a"'):
        assert parse_etags(malformed) is None, malformed
