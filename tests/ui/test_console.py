"""The console in a real browser against a live API over PostgreSQL: sign in, find a user,
publish and roll back with compare-and-swap, scopes, tenancy and a 375 px screen."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
from playwright.sync_api import expect

from registry.console.router import STATIC
from registry.jobs import service as jobs
from registry.jobs.schemas import JobRequest
from tests import factories
from tests.ui.conftest import screenshot, sign_in_quietly

METRICS = [{"accuracy": 0.71, "loss": 0.9}, {"accuracy": 0.78, "loss": 0.6}, {"accuracy": 0.83}]


@pytest.fixture(autouse=True)
def _charts_may_be_missing(expect_console_error):
    """The adapter page draws eval metrics with charts.js where it exists, else shows a
    table: the browser logs the missing module's 404, which is expected until then."""
    if not (STATIC / "charts.js").exists():
        expect_console_error(r"charts\.js")


def _api(live_registry, scope: str = "train") -> httpx.Client:
    headers = {"Authorization": f"Bearer {live_registry.keys[scope]}"}
    return httpx.Client(base_url=live_registry.url, headers=headers, timeout=10)


def _open(page, live_registry, hash_: str, scope: str = "train") -> None:
    sign_in_quietly(page, live_registry.keys[scope])
    page.goto(f"/ui/{hash_}")


def _alias_row(page, alias: str):
    return page.get_by_role("region", name="Aliases").get_by_role("row").filter(has_text=alias)


def test_sign_in_shows_tenant_and_scopes_and_sign_out_forgets_the_key(
    page, live_registry, expect_console_error
):
    expect_console_error(r"401")  # the wrong key first
    page.goto("/")
    page.get_by_label("API key").fill("vera_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="API key").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "signin")

    page.get_by_label("API key").fill(live_registry.keys["train"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Users").wait_for()
    who = page.locator("#who").inner_text()
    assert live_registry.tenant_name in who and "train" in who
    assert page.evaluate("sessionStorage.getItem('vera.apiKey')") == live_registry.keys["train"]
    assert page.evaluate("localStorage.length") == 0

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_find_a_user_and_their_adapters(page, live_registry):
    adapter_id = live_registry.adapter("find-ada", METRICS)
    live_registry.adapter("find-bob", METRICS[:1])
    live_registry.adapter("other-carl", METRICS[:1])
    with _api(live_registry) as api:
        api.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 2}).raise_for_status()
        api.patch(f"/v1/adapters/{adapter_id}", json={"tags": ["find-tag"]}).raise_for_status()

    _open(page, live_registry, "#/users")
    page.get_by_label("User id starts with").fill("find-")
    page.get_by_role("button", name="Search").click()
    users = page.get_by_role("region", name="Users and their adapters")
    users.get_by_role("link", name="find-bob").wait_for()
    assert "other-carl" not in users.inner_text()
    assert "live v2" in users.get_by_role("row").filter(has_text="find-ada").inner_text()
    screenshot(page, "users")

    page.get_by_label("Adapter tag").fill("find-tag")
    page.get_by_role("button", name="Search").click()
    expect(users.get_by_role("link", name="find-bob")).to_have_count(0)
    assert page.url.endswith("#/users?user_id_prefix=find-&tag=find-tag")
    users.get_by_role("link", name="find-ada").click()
    page.get_by_role("heading", name="User find-ada").wait_for()
    row = page.get_by_role("region", name="Adapters of find-ada").get_by_role("row").nth(1)
    assert re.search(r"default.*v2.*minilm.*none", row.inner_text(), re.S)
    screenshot(page, "user")
    row.get_by_role("link", name="default").click()
    page.get_by_role("heading", name=re.compile("^default")).wait_for()
    assert page.url.endswith(f"#/adapters/{adapter_id}")


def test_publish_then_roll_back_with_history_feed_and_download(page, live_registry):
    adapter_id = live_registry.adapter("pub-ann", METRICS)
    _open(page, live_registry, f"#/adapters/{adapter_id}")

    # Escape cancels: nothing is sent.
    page.get_by_role("button", name="Publish v3").click()
    dialog = page.get_by_role("dialog", name="Publish v3")
    assert "does not exist yet" in dialog.inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Publish v3"

    for number in (2, 3):
        page.get_by_role("button", name=f"Publish v{number}").click()
        dialog = page.get_by_role("dialog", name=f"Publish v{number}")
        if number == 3:
            assert "points at v2 (generation 1)" in dialog.inner_text()
        dialog.get_by_role("button", name="Publish").click()
        page.get_by_role("status").filter(has_text=f"now points at v{number}").wait_for()
    assert "v3" in _alias_row(page, "live").inner_text()

    page.get_by_role("button", name="Roll back live").click()
    dialog = page.get_by_role("dialog", name="Roll back live")
    assert "generation 2" in dialog.inner_text()
    dialog.get_by_label("Reason").fill("v3 regressed")
    dialog.get_by_role("button", name="Roll back").click()
    page.get_by_role("status").filter(has_text="live now points at v2 (generation 3)").wait_for()
    history = page.get_by_role("region", name="History of live, newest first")
    newest = history.get_by_role("row").nth(1).inner_text()
    assert re.search(r"rollback.*v3 → v2.*3.*you \(this key\).*v3 regressed", newest, re.S)

    with _api(live_registry) as api:
        events = api.get("/v1/feed", params={"after": 0, "limit": 1000}).json()["events"]
    mine = [e for e in events if e["adapter_id"] == adapter_id]
    assert [(e["kind"], e["to_version"]) for e in mine] == [("set", 2), ("set", 3), ("rollback", 2)]
    assert mine[-1]["reason"] == "v3 regressed"

    with page.expect_download() as download:
        page.get_by_role("button", name="Download v1 safetensors").click()
    data = download.value.path().read_bytes()
    versions = page.get_by_role("region", name="Versions, newest first")
    sha = versions.get_by_role("row").filter(has_text="v1").locator("code[title]").first
    assert hashlib.sha256(data).hexdigest() == sha.get_attribute("title")
    metrics = page.locator(".chart")
    if (STATIC / "charts.js").exists():
        expect(metrics.locator("svg[role=img]")).to_have_count(1)
    else:
        expect(metrics.get_by_role("row")).to_have_count(1 + len(METRICS))
    screenshot(page, "adapter")


def test_a_stale_generation_is_refused_and_explained(page, live_registry, expect_console_error):
    expect_console_error(r"409")
    adapter_id = live_registry.adapter("stale-sam", METRICS)
    alias_url = f"/v1/adapters/{adapter_id}/aliases/live"
    with _api(live_registry) as api:
        api.put(alias_url, json={"version": 1}).raise_for_status()
        _open(page, live_registry, f"#/adapters/{adapter_id}")
        page.get_by_role("button", name="Publish v3").wait_for()
        # Someone else moves the alias after the page loaded.
        api.put(alias_url, json={"version": 2}, headers={"If-Match": '"1"'}).raise_for_status()

        page.get_by_role("button", name="Publish v3").click()
        dialog = page.get_by_role("dialog", name="Publish v3")
        assert "points at v1 (generation 1)" in dialog.inner_text()
        dialog.get_by_role("button", name="Publish").click()
        alert = page.get_by_role("alert").filter(has_text="Someone moved the alias")
        alert.wait_for()
        assert "reload" in alert.inner_text()
        assert api.get(alias_url).json()["version"] == 2  # nothing changed
    screenshot(page, "adapter-conflict")
    alert.get_by_role("button", name="Reload").click()
    cells = _alias_row(page, "live").get_by_role("cell")
    expect(cells.nth(1)).to_have_text("v2")
    expect(cells.nth(2)).to_have_text("2")  # the generation the other writer left
    expect(alert).to_have_count(0)


def test_a_read_only_key_sees_no_publish_or_rollback(page, live_registry):
    adapter_id = live_registry.adapter("ro-rita", METRICS[:2])
    with _api(live_registry) as api:
        api.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 1}).raise_for_status()
    _open(page, live_registry, f"#/adapters/{adapter_id}", scope="read")
    page.get_by_role("button", name="Download v2 PEFT zip").wait_for()
    assert "read" in page.locator("#who").inner_text()
    assert page.get_by_role("button", name=re.compile("^(Publish|Roll back)")).count() == 0


def test_another_tenants_adapter_is_not_found(page, live_registry, expect_console_error):
    expect_console_error(r"404")
    foreign = live_registry.adapter("alien", METRICS[:1], tenant_id=live_registry.other_tenant_id)
    _open(page, live_registry, f"#/adapters/{foreign}")
    page.get_by_role("heading", name="Adapter not found").wait_for()
    assert "alien" not in page.locator("main").inner_text()


def test_every_page_fits_a_375px_screen(page, live_registry):
    adapter_id = live_registry.adapter("narrow-nina", METRICS)
    page.set_viewport_size({"width": 375, "height": 740})
    pages = {
        "users": ("#/users", "Users"),
        "user": ("#/users/narrow-nina", "User narrow-nina"),
        "adapter": (f"#/adapters/{adapter_id}", re.compile("^default")),
    }
    _open(page, live_registry, "#/users")
    for name, (hash_, heading) in pages.items():
        page.goto(f"/ui/{hash_}")
        page.get_by_role("heading", name=heading).wait_for()
        page.locator("[aria-busy]").wait_for(state="detached")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: {overflow}px of horizontal scroll at 375 px"
        screenshot(page, f"{name}-375px")


def test_api_stream_reads_a_jobs_events_until_it_ends(page, live_registry):
    """api.stream (what the job page follows) over the real SSE route: every event in
    order, parsed, then the end of the stream."""
    tenant_id = live_registry.tenant_id
    with live_registry.session() as session:
        adapter = factories.adapter(session, tenant_id, user_id="stream-sue")
        dataset = factories.dataset(session, tenant_id, "stream-sue")
        request = JobRequest(
            user_id="stream-sue",
            dataset_id=dataset.id,
            base_model_id=adapter.base_model_id,
            projection_id=adapter.projection_id,
            target_modules=["query", "value"],
        )
        job_id = jobs.submit_job(session, tenant_id, request)[0].id
        jobs.append_job_event(session, job_id, "progress", {"step": 1, "loss": 0.5, "text": "é ✓"})
        jobs.request_cancel(session, tenant_id, job_id)  # queued: cancelled at once
    with _api(live_registry) as api:
        expected = api.get(f"/v1/jobs/{job_id}/events").json()
    assert "progress" in [e["kind"] for e in expected]
    _open(page, live_registry, "#/users")
    page.get_by_role("heading", name="Users").wait_for()
    events = page.evaluate(
        """async (path) => {
            const { api } = await import("/ui/api.js");
            const seen = [];
            await api.stream(path, (e) => seen.push(e));
            return seen;
        }""",
        f"/v1/jobs/{job_id}/events",
    )
    assert [e["event"] for e in events] == [e["kind"] for e in expected] + ["end"]
    assert [e["data"] for e in events[:-1]] == expected
    assert [e["id"] for e in events[:-1]] == [str(e["seq"]) for e in expected]
