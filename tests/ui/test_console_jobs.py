"""The jobs, job and base-model pages in a real browser, over a live API on PostgreSQL with
a real Celery worker process: a job followed live to success, a queued job cancelled, the
list filtered, the base model's projection fingerprint shown; at 375 px where it matters.

One test (and one module-scoped stack) on purpose: the worker process and MiniLM's upload
are the expensive parts, and xdist could otherwise start them once per test process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.client.api import RegistryClient
from registry.db import make_engine, make_sessionmaker
from registry.vera.describe import describe_base_model, describe_projection, layers_for
from tests import factories
from tests.api.live_api import LiveApi
from tests.pgdb import temporary_database
from tests.ui.conftest import LiveRegistry, screenshot, sign_in_quietly
from tests.workers.conftest import Workers
from tests.workers.test_job_fit import _text, tiny_llama_with_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

IDLE_QUEUE = "ui-nobody-listens"  # a job sent here stays queued: the worker reads "train"
# A tiny random Llama trains a step in milliseconds: enough steps, and heartbeats often
# enough, that the page sees the bar between 0 and 1 however fast the machine.
TRAIN_STEPS = 100
TARGETS = ["q_proj", "v_proj"]


@dataclass
class JobsStack:
    registry: LiveRegistry
    workers: Workers
    client: RegistryClient  # train key
    base_model: dict
    projection: dict
    dataset: dict

    def submit(self, **extra) -> dict:
        return self.client.submit_job(
            {
                "user_id": "alice",
                "dataset_id": self.dataset["id"],
                "base_model_id": self.base_model["id"],
                "projection_id": self.projection["id"],
                "target_modules": TARGETS,
                "hyperparameters": {
                    "max_steps": TRAIN_STEPS,
                    "batch_size": 2,
                    "max_seq_len": 16,
                    "eval_fraction": 0.0,
                },
                **extra,
            }
        )


@pytest.fixture(scope="module")
def jobs_stack(tmp_path_factory) -> Iterator[JobsStack]:
    workdir = tmp_path_factory.mktemp("ui-jobs")
    with temporary_database("vera_ui_jobs") as database_url:
        # No broker given: API and worker share the SQLite broker under VERA_HOME.
        api = LiveApi(workdir, database_url=database_url, heartbeat_interval_s="0.1")
        api.start()
        # One thread: OpenMP's spinning threads crawl on a busy shared machine.
        env = api.env | {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "OMP_NUM_THREADS": "1",
        }
        workers = Workers(env, workdir)
        workers.start("ui")  # warms up (imports torch) while the rest is set up
        engine = make_engine(database_url)
        try:
            yield _stack(api, make_sessionmaker(engine), workers, workdir)
        finally:
            workers.stop_all()
            engine.dispose()
            api.stop()


def _stack(api: LiveApi, sessions, workers: Workers, workdir: Path) -> JobsStack:
    registry = LiveRegistry(
        url=f"http://127.0.0.1:{api.port}",
        sessions=sessions,
        blobs=api.blobs,
        tenant_id="",
        tenant_name="Acme Robotics",
        keys={},
        other_tenant_id="",
    )
    with registry.session() as session:
        tenant = factories.tenant(session, registry.tenant_name)
        registry.tenant_id = tenant.id
        for scope in ("admin", "train", "read"):
            registry.keys[scope] = factories.api_key(session, tenant.id, [scope])[1]
    folder = tiny_llama_with_tokenizer(workdir / "tiny-llama")
    description = describe_base_model(folder)
    with RegistryClient(registry.url, registry.keys["admin"]) as admin:
        base_model = admin.upload_base_model(folder, description)
        layers = layers_for(description, "causal-lm")
        body = describe_projection(layers, TARGETS, 7, 8, "causal-lm")
        projection = admin.register_projection(base_model["id"], body)
    client = RegistryClient(registry.url, registry.keys["train"])
    dataset = client.upload_dataset("alice", "causal-lm", _text(16))
    return JobsStack(registry, workers, client, base_model, projection, dataset)


@pytest.fixture(scope="module")
def live_registry(jobs_stack) -> LiveRegistry:
    """The console's `page` fixture opens this module's API, the one the worker serves."""
    return jobs_stack.registry


BADGE = ".job-state .badge"
# Every value the progress bar takes from now on (setting .value sets the attribute).
RECORD_BAR = """() => {
  const bar = document.getElementById("job-progress");
  window.barValues = [bar.value];
  new MutationObserver(() => window.barValues.push(bar.value))
    .observe(bar, { attributes: true, attributeFilter: ["value"] });
}"""


def _watch(page, console_errors) -> None:
    """Console errors of a second page count as the `page` fixture's do."""
    page.on("console", lambda m: m.type == "error" and console_errors.seen.append(m.text))
    page.on("pageerror", lambda error: console_errors.seen.append(f"uncaught: {error}"))


def _no_horizontal_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page is {width} px wide"


def _open_job(page, job: dict) -> str:
    page.goto(f"/ui/#/jobs/{job['id']}")
    page.locator(BADGE).wait_for()
    return page.locator(BADGE).inner_text()


def _read_only_sees_no_cancel(chromium, stack: JobsStack, job: dict) -> None:
    reader = chromium.new_context(base_url=stack.registry.url)
    try:
        reader_page = reader.new_page()
        sign_in_quietly(reader_page, stack.registry.keys["read"])
        assert _open_job(reader_page, job) == "queued"
        assert reader_page.get_by_role("button", name="Cancel job").count() == 0
    finally:
        reader.close()


def _cancel_queued_job(page, stack: JobsStack) -> dict:
    job = stack.submit(queue=IDLE_QUEUE)
    assert _open_job(page, job) == "queued"
    page.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog")
    assert job["id"] in dialog.inner_text()
    dialog.get_by_role("button", name="Yes, cancel the job").click()
    page.locator(BADGE, has_text="cancelled").wait_for()
    assert page.get_by_role("button", name="Cancel job").is_hidden()
    assert stack.client.get_job(job["id"])["state"] == "cancelled"
    screenshot(page, "job-cancelled")
    return job


def _models_page(page, stack: JobsStack) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto("/ui/#/models")
    card = page.locator("section.model", has_text=stack.base_model["name"])
    projection = card.locator("li.projection", has_text=stack.projection["fingerprint"])
    projection.wait_for()
    assert "r = 8, seed 7" in projection.inner_text()
    assert stack.base_model["weights_hash"] in card.inner_text()
    layers = len(stack.base_model["layers"])
    assert f"{layers} adaptable linear layers" in card.inner_text()
    _no_horizontal_scroll(page)
    screenshot(page, "models-375")


def _saw_it_succeed(page, job: dict) -> None:
    page.locator(BADGE, has_text="succeeded").wait_for(timeout=240_000)
    values = page.evaluate("window.barValues")
    assert any(0 < v < 1 for v in values), f"the bar never moved between 0 and 1: {values}"
    assert values[-1] == 1
    assert "Step" in page.locator("#job-progress-text").inner_text()
    page.wait_for_function("document.querySelectorAll('.job-chart .chart-point').length >= 2")
    chart = page.locator(".job-chart svg[role=img]")
    assert chart.get_attribute("aria-label").startswith("Training loss:")
    assert page.locator(".job-chart table tbody tr").count() >= 2  # the screen reader's copy
    result = page.locator(".job-result a")
    result.wait_for()
    assert "version 1" in result.inner_text()
    assert result.get_attribute("href") == f"#/adapters/{job['adapter_id']}"
    _no_horizontal_scroll(page)
    screenshot(page, "job-succeeded-375")
    # The link leads to the adapter's page, whose eval metrics chart is charts.js's too.
    result.click()
    metrics_chart = page.locator("svg[role=img][aria-label^='Eval metrics over versions']")
    metrics_chart.wait_for()
    assert "final_loss" in metrics_chart.get_attribute("aria-label")


def _list_and_filter(page, done: dict, cancelled: dict) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/ui/#/jobs")
    rows = page.locator("table tbody tr")
    rows.filter(has_text=done["id"]).wait_for()
    assert rows.filter(has_text=cancelled["id"]).count() == 1
    page.get_by_label("State").select_option("cancelled")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/#/jobs?state=cancelled")
    rows.filter(has_text=cancelled["id"]).wait_for()
    assert rows.count() == 1
    screenshot(page, "jobs")
    page.get_by_role("link", name=cancelled["id"]).click()
    page.locator(BADGE, has_text="cancelled").wait_for()


def test_jobs_pages_follow_a_real_job(page, chromium, jobs_stack, console_errors):
    stack = jobs_stack
    sign_in_quietly(page, stack.registry.keys["train"])
    page.set_viewport_size({"width": 375, "height": 800})
    job = stack.submit()
    first_state = _open_job(page, job)
    assert first_state in ("queued", "running"), "the job ended before the page could follow it"
    page.evaluate(RECORD_BAR)
    screenshot(page, f"job-{first_state}-375")
    # While the worker takes the job (loading torch the first time), a second tab of the
    # same session cancels another job and reads the models page; the first follows live.
    other = page.context.new_page()
    _watch(other, console_errors)
    _read_only_sees_no_cancel(chromium, stack, stack.submit(queue=IDLE_QUEUE))
    cancelled = _cancel_queued_job(other, stack)
    _models_page(other, stack)
    other.close()
    page.bring_to_front()
    _saw_it_succeed(page, job)
    _list_and_filter(page, job, cancelled)
