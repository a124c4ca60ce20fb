"""/docs and /redoc in Chromium with every request outside the API refused: both render
the operations (their summaries) from local files alone, and /docs takes a key."""

from __future__ import annotations

import pytest

# The first render parses 1-1.5 MB of JavaScript and the whole OpenAPI document.
RENDER_MS = 60_000


@pytest.fixture
def offline(page, live_registry):
    """Refuses, and records, every request that does not go to the API under test."""
    outside: list[str] = []

    def handle(route):
        url = route.request.url
        if url.startswith((live_registry.url + "/", "blob:", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort("internetdisconnected")

    page.context.route("**/*", handle)
    yield page
    assert not outside, f"the page reached outside the API: {outside}"


def test_swagger_ui_renders_offline_and_takes_a_bearer_key(offline, live_registry):
    offline.goto("/docs")
    publish = offline.locator(".opblock-summary-description", has_text="Publish a version")
    publish.first.wait_for(timeout=RENDER_MS)
    assert offline.locator(".opblock").count() > 40  # every operation, not just a few

    offline.get_by_role("button", name="Authorize").first.click()
    dialog = offline.locator(".modal-ux")
    dialog.get_by_text("HTTPBearer").wait_for()
    dialog.locator("#auth-bearer-value").fill(live_registry.keys["read"])
    dialog.get_by_role("button", name="Apply credentials").click()
    dialog.get_by_role("button", name="Close").click()

    # The key entered goes with "Try it out": GET /v1/me answers with the key's tenant.
    me = offline.locator("#operations-keys-whoami_v1_me_get")
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    me.locator(".live-responses-table").get_by_text(live_registry.tenant_name).first.wait_for()


def test_redoc_renders_offline(offline, expect_console_error):
    # ReDoc's side menu always shows a logo from cdn.redoc.ly: the page's
    # Content-Security-Policy refuses it (logged), the <img> hides, nothing leaves.
    expect_console_error(r"cdn\.redoc\.ly")
    offline.goto("/redoc")
    offline.get_by_role("heading", name="Is the process up?").wait_for(timeout=RENDER_MS)
    for summary in ("Submit a training job", "Publish a version under an alias"):
        offline.get_by_text(summary, exact=True).first.wait_for(state="attached")
