"""0004_models on a database with base models registered before manifests."""

import pytest
from sqlalchemy import text

from registry.db import make_engine
from registry.migrate import downgrade, upgrade
from tests.pgdb import temporary_database


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    with temporary_database("vera_mig2") as url:
        yield url


def test_old_rows_keep_their_hash_as_weights_hash_and_have_no_files(url):
    upgrade(url, "0001")
    engine = make_engine(url)
    old_hash = "sha256:" + "a" * 64
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', :now)"),
                {"now": "2026-01-01 00:00:00+00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO base_models (id, tenant_id, name, content_hash, architecture, "
                    "layers, source_uri, created_at) VALUES ('b', 't', 'm', :hash, 'Bert', "
                    "'{}', '/models/m', :now)"
                ),
                {"hash": old_hash, "now": "2026-01-01 00:00:00+00:00"},
            )
        upgrade(url)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT weights_hash, source_uri FROM base_models")).one()
            files = conn.execute(text("SELECT count(*) FROM base_model_files")).scalar()
        assert tuple(row) == (old_hash, "/models/m") and files == 0
        downgrade(url, "0001")
    finally:
        engine.dispose()
