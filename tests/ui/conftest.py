"""Browser tests of the console: Debian's Chromium driven by Playwright against a live
registry API process over PostgreSQL.

`chromium` is one browser per test module: Playwright's sync API keeps an asyncio event
loop running on the thread while it is open, and a later test of another module in the
same process (one that calls `asyncio.run`) would fail. `live_registry` is one API
process per test process (a fresh tenant with admin, train and read keys, and a second
tenant to try to reach).
Per test: `page` (a fresh browser context: empty sessionStorage) that fails the test on
any console error or uncaught exception the test did not announce with
`expect_console_error(pattern)`. `screenshot(page, name)` saves a PNG under
$VERA_SCREENSHOTS or tests/ui/.screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from registry.adapters import service as adapters
from registry.db import make_engine, make_sessionmaker, session_scope
from registry.storage import LocalBlobStore
from tests import factories
from tests.api import helpers
from tests.api.live_api import LiveApi
from tests.pgdb import temporary_database

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install '.[dev]'")

SCREENSHOTS = Path(os.environ.get("VERA_SCREENSHOTS") or Path(__file__).parent / ".screenshots")
# No GPU, no sandbox (containers, root), nothing fetched behind the test's back.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def chromium():
    """The system's Chromium (apt-get install chromium; scripts/install.sh does it)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("no chromium on PATH: run `apt-get install -y chromium` (scripts/install.sh)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@dataclass
class LiveRegistry:
    """The live API and what the tests sign in with."""

    url: str
    sessions: sessionmaker  # over the API's own database
    blobs: Path
    tenant_id: str
    tenant_name: str
    keys: dict[str, str]  # scope → key: "admin", "train", "read"
    other_tenant_id: str
    other_keys: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction on the API's own database, for rows a test sets up directly."""
        with session_scope(self.sessions) as session:
            yield session

    def adapter(self, user_id: str, metrics: list[dict], tenant_id: str | None = None) -> str:
        """An adapter of `user_id` with a version per entry of `metrics` (real blobs)."""
        store = LocalBlobStore(self.blobs, 2**30)
        with self.session() as session:
            row = factories.adapter(session, tenant_id or self.tenant_id, user_id=user_id)
            for number, version_metrics in enumerate(metrics, 1):
                info = store.put(helpers.safetensors_blob([float(number), 1.0]))
                adapters.create_version(
                    session,
                    row,
                    blob_sha256=info.sha256,
                    size_bytes=info.size,
                    metrics=version_metrics,
                )
            return row.id


@pytest.fixture(scope="session")
def live_registry(tmp_path_factory) -> Iterator[LiveRegistry]:
    """`uvicorn registry.main:create_app` over a fresh PostgreSQL database."""
    with temporary_database("vera_ui") as database_url:
        api = LiveApi(tmp_path_factory.mktemp("ui-api"), database_url=database_url)
        api.start()
        engine = make_engine(database_url)
        try:
            sessions = make_sessionmaker(engine)
            with session_scope(sessions) as session:
                tenant = factories.tenant(session, "Acme Robotics")
                keys = {
                    scope: factories.api_key(session, tenant.id, [scope])[1]
                    for scope in ("admin", "train", "read")
                }
                other = factories.tenant(session)
                other_keys = {"admin": factories.api_key(session, other.id, ["admin"])[1]}
                ids = (tenant.id, tenant.name, other.id)
            yield LiveRegistry(
                url=f"http://127.0.0.1:{api.port}",
                sessions=sessions,
                blobs=api.blobs,
                tenant_id=ids[0],
                tenant_name=ids[1],
                keys=keys,
                other_tenant_id=ids[2],
                other_keys=other_keys,
            )
        finally:
            engine.dispose()
            api.stop()


@dataclass
class ConsoleErrors:
    """Console errors and uncaught exceptions of a page; `expected`: patterns a test
    announced (the browser logs a failed request, e.g. the 409 a test provokes)."""

    seen: list[str] = field(default_factory=list)
    expected: list[re.Pattern] = field(default_factory=list)

    def unexpected(self) -> list[str]:
        return [m for m in self.seen if not any(p.search(m) for p in self.expected)]


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def expect_console_error(console_errors) -> Callable[[str], None]:
    """Announce a console error the test provokes: a regex its text matches."""
    return lambda pattern: console_errors.expected.append(re.compile(pattern))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome on the test, for the `page` fixture's screenshot."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request, chromium, live_registry, console_errors):
    """A page in a fresh context (sessionStorage empty); fails on unexpected console errors."""
    context = chromium.new_context(
        base_url=live_registry.url, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            # A failed request's message does not name the URL; its location does.
            and console_errors.seen.append(f"{message.text} ({message.location.get('url')})")
        ),
    )
    page.on("pageerror", lambda error: console_errors.seen.append(f"uncaught: {error}"))
    try:
        yield page
        failed = getattr(request.node, "report_call", None)
        if failed is not None and failed.failed:
            screenshot(page, f"FAILED-{request.node.name}")
    finally:
        context.close()
    assert not console_errors.unexpected(), f"console errors: {console_errors.unexpected()}"


def sign_in_quietly(page, key: str) -> None:
    """The key in sessionStorage before any script runs: for tests not about signing in."""
    page.context.add_init_script(f"sessionStorage.setItem('vera.apiKey', {json.dumps(key)})")


def screenshot(page, name: str) -> Path:
    """A full-page PNG of what the test sees (not committed: tests/ui/.screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
