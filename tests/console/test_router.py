"""The console's static files at /ui: types browsers insist on, fallback, no escape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry.config import Settings
from registry.main import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # The static routes touch neither database nor storage.
    home = tmp_path_factory.mktemp("console")
    settings = Settings(
        _env_file=None, database_url=f"sqlite:///{home}/r.db", storage_url=f"file://{home}/b"
    )
    return TestClient(create_app(settings, dispatcher=object()), follow_redirects=False)


def test_root_and_bare_ui_redirect_to_the_console(client):
    for path in ("/", "/ui"):
        response = client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"


def test_index_and_modules_are_served_with_their_types_and_a_strict_policy(client):
    index = client.get("/ui/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert '<script type="module" src="/ui/app.js">' in index.text
    module = client.get("/ui/app.js")
    assert module.headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/ui/pages/signin.js").status_code == 200


def test_a_path_without_extension_opens_the_console_and_a_missing_file_is_a_404(client):
    assert "<main" in client.get("/ui/users/alice").text
    missing = client.get("/ui/pages/nope.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_nothing_outside_the_static_folder_is_served(client):
    # router.py sits next to static/, main.py and config.py two levels up.
    for path in ("/ui/%2e%2e/router.py", "/ui/..%2f..%2fmain.py", "/ui/pages/..%2f..%2frouter.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_the_console_is_not_in_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]
