"""Long-poll waiters of /v1/feed: one source of events per process wakes them all, and
waiters asking the same question share one read."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import event

from tests.api import helpers
from tests.cli.conftest import live_url  # noqa: F401

WAITERS = 40
QUIET_S = 2.0


class FeedQueries:
    """Counts the statements the app sends for feed reads and for polls."""

    def __init__(self, engine) -> None:
        self.reads = self.polls = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, _conn, _cursor, statement, _params, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM alias_events" in statement:
            if "alias_events.tenant_id =" in statement:
                self.reads += 1
            else:
                self.polls += 1


@pytest.fixture
def queries(app):
    return FeedQueries(app.state.engine)


def test_many_waiters_one_read_per_change(app, tenant, live_url, queries):  # noqa: F811
    adapter_id = helpers.adapter_with_versions(
        app, tenant.id, [helpers.safetensors_blob([1.0]), helpers.safetensors_blob([2.0])]
    )
    alias_url = f"/v1/adapters/{adapter_id}/aliases/live"

    async def scenario():
        async with httpx.AsyncClient(
            base_url=live_url, headers=tenant.auth("train"), timeout=30
        ) as http:
            await http.put(alias_url, json={"version": 1})
            cursor = (await http.get("/v1/feed")).json()["last_seq"]
            before = queries.reads, queries.polls
            answered: list[float] = []

            async def wait_for_feed() -> httpx.Response:
                answer = await http.get("/v1/feed", params={"after": cursor, "wait": 10})
                answered.append(time.monotonic())
                return answer

            waiting = [asyncio.create_task(wait_for_feed()) for _ in range(WAITERS)]
            while len(app.state.feed_waiters) < WAITERS:  # all forty have come in
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # and made their first reads
            first, polled = queries.reads - before[0], queries.polls
            await asyncio.sleep(QUIET_S)  # nothing happens meanwhile
            quiet = queries.reads - before[0] - first, queries.polls - polled
            await http.put(alias_url, json={"version": 2})
            published = time.monotonic()
            answers = await asyncio.gather(*waiting)
            woken = queries.reads - before[0] - first - quiet[0]
            return first, quiet, woken, answers, max(answered) - published

    first_reads, (quiet_reads, polls), woken_reads, answers, latency = asyncio.run(scenario())
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert [e["to_version"] for e in answer.json()["events"]] == [2]
    assert latency < 1.0, latency
    pushed = app.state.engine.dialect.name == "postgresql"
    assert first_reads <= WAITERS, first_reads  # one each at most (they share when they can)
    # Before: every waiter read every 0.2 s (40 x 10 = 400 reads in the quiet 2 s). Now
    # none (without push, one shared re-read when the process first polls the feed).
    assert quiet_reads <= (0 if pushed else 2), quiet_reads
    assert polls <= (1 if pushed else QUIET_S / 0.2 + 5), polls  # one poller, or push
    assert woken_reads <= 2, woken_reads  # one read answers all forty
