"""packs: pack keys, pack facts and checkpoints on jobs; one row per pack for /metrics

Revision ID: 0005_packs
Revises: 0004_models
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.db

revision: str = "0005_packs"
down_revision: str | None = "0004_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "packs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("max_size", sa.Integer(), nullable=False),
        sa.Column("steps", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("step_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packs")),
    )
    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_packs_updated_at"), ["updated_at"], unique=False)

    # Jobs queued before packs have no pack key: each trains alone, as before.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pack_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("pack_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("pack_size", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("checkpoint_blob_sha256", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("checkpoint_step", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_jobs_pack_key_state_created_at",
            ["pack_key", "state", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_jobs_checkpoint_blob_sha256"), ["checkpoint_blob_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_checkpoint_blob_sha256"))
        batch_op.drop_index("ix_jobs_pack_key_state_created_at")
        batch_op.drop_column("checkpoint_step")
        batch_op.drop_column("checkpoint_blob_sha256")
        batch_op.drop_column("pack_size")
        batch_op.drop_column("pack_id")
        batch_op.drop_column("pack_key")
    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_packs_updated_at"))
    op.drop_table("packs")
