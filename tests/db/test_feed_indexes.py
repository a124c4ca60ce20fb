"""The feed and alias-history queries use their indexes on a PostgreSQL table of real size."""

from __future__ import annotations

from sqlalchemy import event, inspect, text

from registry.adapters import service as adapters
from registry.db import session_scope
from tests import factories

TENANTS = 20
EVENTS = 20_000
QUIET_EVERY = 400


def _plan(session, run) -> str:
    """EXPLAIN of the statement `run(session)` sends, with its real parameters."""
    sent: list[tuple[str, dict]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "alias_events" in statement:
            sent.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        run(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    rows = session.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
    return "\n".join(row[0] for row in rows)


def _fill(session) -> tuple[str, str]:
    """EVENTS events of TENANTS busy tenants, round robin, with a quiet tenant's every
    QUIET_EVERY-th: the tenant and adapter a feed follower and a history read would ask for."""
    ids = []
    for _ in range(TENANTS + 1):
        tenant = factories.tenant(session)
        ids.append((tenant.id, factories.adapter(session, tenant.id).id))
    session.flush()
    quiet, busy = ids[0], ids[1:]
    session.execute(
        text(
            "INSERT INTO alias_events (tenant_id, adapter_id, user_id, adapter_name, alias,"
            " kind, to_version, generation, created_at)"
            " SELECT CASE WHEN n % :every = 0 THEN :quiet_tenant"
            " ELSE (CAST(:tenants AS text[]))[1 + n % :busy] END,"
            " CASE WHEN n % :every = 0 THEN :quiet_adapter"
            " ELSE (CAST(:adapters AS text[]))[1 + n % :busy] END,"
            " 'user-1', 'default', CASE WHEN n % 2 = 0 THEN 'live' ELSE 'canary' END,"
            " 'set', n, n, now() FROM generate_series(1, :count) AS n"
        ),
        {
            "every": QUIET_EVERY,
            "quiet_tenant": quiet[0],
            "quiet_adapter": quiet[1],
            "tenants": [t for t, _ in busy],
            "adapters": [a for _, a in busy],
            "busy": len(busy),
            "count": EVENTS,
        },
    )
    session.execute(text("ANALYZE alias_events"))
    return quiet


def test_alias_events_indexes_lead_with_the_filter_columns(pg_session_factory):
    with session_scope(pg_session_factory) as session:
        indexes = inspect(session.connection()).get_indexes("alias_events")
    columns = {i["name"]: i["column_names"] for i in indexes}
    assert columns["ix_alias_events_tenant_id_seq"] == ["tenant_id", "seq"]
    assert columns["ix_alias_events_adapter_id_alias_seq"] == ["adapter_id", "alias", "seq"]


def test_feed_and_history_queries_scan_their_indexes(pg_session_factory):
    with session_scope(pg_session_factory) as session:
        tenant_id, adapter_id = _fill(session)
        feed = _plan(session, lambda s: adapters.read_feed(s, tenant_id, 0, 100))
        history = _plan(session, lambda s: adapters.alias_history(s, tenant_id, adapter_id, "live"))
    assert "ix_alias_events_tenant_id_seq" in feed, feed
    assert "ix_alias_events_adapter_id_alias_seq" in history, history
