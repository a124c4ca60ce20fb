"""The console in a real browser: sign in, find a user, publish, roll back, conflicts."""

from __future__ import annotations

from tests.ui.conftest import screenshot


def test_sign_in_shows_tenant_and_scopes(page, live_registry):
    page.goto("/")
    page.get_by_label("API key").fill(live_registry.keys["train"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Users").wait_for()
    who = page.locator("#who")
    assert live_registry.tenant_name in who.inner_text()
    assert "train" in who.inner_text()
    assert page.evaluate("sessionStorage.getItem('vera.apiKey')") == live_registry.keys["train"]
    assert page.evaluate("localStorage.length") == 0
    screenshot(page, "signin")
