"""lifecycle: erasure, retention, quotas, metadata and tags, audit log, webhooks

Revision ID: 0006_lifecycle
Revises: 0005_packs
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import Text

import registry.db

revision: str = "0006_lifecycle"
down_revision: str | None = "0005_packs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
FEED_KINDS_OLD = "kind IN ('set', 'rollback')"
FEED_KINDS = "kind IN ('set', 'rollback', 'version_deleted', 'adapter_deleted', 'user_deleted')"


def upgrade() -> None:
    # --- erasure and retention ---
    # The feed carries deletions; a deletion event names adapter ids only, so the columns
    # that describe an alias move become optional.
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_alias_events_kind"), type_="check")
        batch_op.create_check_constraint("kind", FEED_KINDS)
        batch_op.add_column(sa.Column("adapter_ids", JSON, nullable=True))
        for column, kind in (
            ("adapter_id", sa.String(length=32)),
            ("user_id", sa.String(length=200)),
            ("adapter_name", sa.String(length=200)),
            ("alias", sa.String(length=64)),
            ("to_version", sa.Integer()),
            ("generation", sa.Integer()),
        ):
            batch_op.alter_column(column, existing_type=kind, nullable=True)
    # Version numbers are never reused, even once the highest version is deleted.
    with op.batch_alter_table("adapters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_version", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE adapters SET last_version = COALESCE((SELECT MAX(v.number) FROM "
        "adapter_versions v WHERE v.adapter_id = adapters.id), 0)"
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purged_at", registry.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column("blob_sha256", existing_type=sa.String(length=64), nullable=True)

    # --- quotas and retention policy ---
    op.create_table(
        "tenant_policies",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("max_active_jobs", sa.Integer(), nullable=True),
        sa.Column("max_stored_bytes", sa.BigInteger(), nullable=True),
        sa.Column("max_users", sa.Integer(), nullable=True),
        sa.Column("max_requests_per_s", sa.Float(), nullable=True),
        sa.Column("keep_versions", sa.Integer(), nullable=True),
        sa.Column("keep_alias_days", sa.Integer(), nullable=True),
        sa.Column("keep_dataset_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_policies_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_policies")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_tenant_id_state", ["tenant_id", "state"], unique=False)
        batch_op.create_index(
            "ix_jobs_tenant_id_queue_started_at", ["tenant_id", "queue", "started_at"], unique=False
        )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_datasets_tenant_id_user_id", ["tenant_id", "user_id"], unique=False
        )

    # --- metadata and tags ---
    with op.batch_alter_table("adapters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "updated_at",
                registry.db.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.func.current_timestamp(),
            )
        )
        batch_op.create_index(batch_op.f("ix_adapters_updated_at"), ["updated_at"], unique=False)
    op.execute("UPDATE adapters SET updated_at = created_at")
    with op.batch_alter_table("adapters", schema=None) as batch_op:
        batch_op.alter_column(
            "updated_at", existing_type=registry.db.UTCDateTime(timezone=True), server_default=None
        )
        batch_op.alter_column("last_version", existing_type=sa.Integer(), server_default=None)
    with op.batch_alter_table("adapter_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tags", JSON, nullable=False, server_default="[]"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("tags", existing_type=JSON, server_default=None)
    for table, owner, owner_table in (
        ("adapter_tags", "adapter_id", "adapters"),
        ("version_tags", "version_id", "adapter_versions"),
    ):
        op.create_table(
            table,
            sa.Column(owner, sa.String(length=32), nullable=False),
            sa.Column("tag", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=32), nullable=False),
            sa.ForeignKeyConstraint(
                [owner],
                [f"{owner_table}.id"],
                name=op.f(f"fk_{table}_{owner}_{owner_table}"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["tenant_id"],
                ["tenants.id"],
                name=op.f(f"fk_{table}_tenant_id_tenants"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint(owner, "tag", name=op.f(f"pk_{table}")),
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_tenant_id_tag", ["tenant_id", "tag"], unique=False)

    # --- audit ---
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("actor_key_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("adapter_id", sa.String(length=32), nullable=True),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audit_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_events_adapter_id"), ["adapter_id"], unique=False
        )
        batch_op.create_index("ix_audit_events_tenant_id_id", ["tenant_id", "id"], unique=False)

    # --- webhooks ---
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", JSON, nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_endpoints_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_endpoints_tenant_id"), ["tenant_id"], unique=False
        )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("adapter_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'succeeded', 'failed')", name=op.f("ck_webhook_deliveries_state")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_deliveries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_adapter_id"), ["adapter_id"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_deliveries_endpoint_id_created_at",
            ["endpoint_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_webhook_deliveries_state_next_attempt_at",
            ["state", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_tenant_id"), ["tenant_id"], unique=False
        )


def downgrade() -> None:
    # --- webhooks ---
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")

    # --- audit ---
    op.drop_table("audit_events")
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        batch_op.drop_column("reason")
        batch_op.drop_column("actor_key_id")

    # --- metadata and tags ---
    op.drop_table("version_tags")
    op.drop_table("adapter_tags")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("tags")
        batch_op.drop_column("description")
    with op.batch_alter_table("adapter_versions", schema=None) as batch_op:
        batch_op.drop_column("description")
    with op.batch_alter_table("adapters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adapters_updated_at"))
        batch_op.drop_column("updated_at")
        batch_op.drop_column("description")

    # --- quotas and retention policy ---
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_datasets_tenant_id_user_id")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_id_queue_started_at")
        batch_op.drop_index("ix_jobs_tenant_id_state")
    op.drop_table("tenant_policies")

    # --- erasure and retention ---
    # An older release knows no deletion events and no purged dataset: those rows go.
    op.execute("DELETE FROM alias_events WHERE kind NOT IN ('set', 'rollback')")
    op.execute(
        "DELETE FROM datasets WHERE blob_sha256 IS NULL AND id NOT IN "
        "(SELECT dataset_id FROM jobs)"
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
    with op.batch_alter_table("adapters", schema=None) as batch_op:
        batch_op.drop_column("last_version")
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        batch_op.drop_column("adapter_ids")
        batch_op.drop_constraint(op.f("ck_alias_events_kind"), type_="check")
        batch_op.create_check_constraint("kind", FEED_KINDS_OLD)
        for column, kind in (
            ("adapter_id", sa.String(length=32)),
            ("user_id", sa.String(length=200)),
            ("adapter_name", sa.String(length=200)),
            ("alias", sa.String(length=64)),
            ("to_version", sa.Integer()),
            ("generation", sa.Integer()),
        ):
            batch_op.alter_column(column, existing_type=kind, nullable=False)
