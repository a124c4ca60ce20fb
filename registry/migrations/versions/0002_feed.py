"""alias_events indexes for the change feed and alias history

Revision ID: 0002_feed
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_feed"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        # (tenant_id, seq) leads with tenant_id, so the single-column index is redundant.
        batch_op.drop_index("ix_alias_events_tenant_id")
        batch_op.create_index("ix_alias_events_tenant_id_seq", ["tenant_id", "seq"])
        batch_op.create_index(
            "ix_alias_events_adapter_id_alias_seq", ["adapter_id", "alias", "seq"]
        )


def downgrade() -> None:
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        batch_op.drop_index("ix_alias_events_adapter_id_alias_seq")
        batch_op.drop_index("ix_alias_events_tenant_id_seq")
        batch_op.create_index("ix_alias_events_tenant_id", ["tenant_id"])
