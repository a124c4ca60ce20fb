"""base models are manifests of files: per-file rows, per-tenant uploads, weights_hash

Revision ID: 0004_models
Revises: 0003_numerics
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.db

revision: str = "0004_models"
down_revision: str | None = "0003_numerics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "base_model_files",
        sa.Column("base_model_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_model_id"],
            ["base_models.id"],
            name=op.f("fk_base_model_files_base_model_id_base_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("base_model_id", "path", name=op.f("pk_base_model_files")),
    )
    with op.batch_alter_table("base_model_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_base_model_files_sha256"), ["sha256"], unique=False)

    op.create_table(
        "model_file_uploads",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_model_file_uploads_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "sha256", name=op.f("pk_model_file_uploads")),
    )
    with op.batch_alter_table("model_file_uploads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_file_uploads_sha256"), ["sha256"], unique=False
        )

    # Rows registered before manifests hashed tensors only: that hash is their weights hash.
    # They have no files, so a worker asks for them to be registered again.
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weights_hash", sa.String(length=71), nullable=True))
        batch_op.alter_column("source_uri", existing_type=sa.String(length=2000), nullable=True)
    op.execute("UPDATE base_models SET weights_hash = content_hash")
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.alter_column("weights_hash", existing_type=sa.String(length=71), nullable=False)


def downgrade() -> None:
    op.execute("UPDATE base_models SET source_uri = '' WHERE source_uri IS NULL")
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.alter_column("source_uri", existing_type=sa.String(length=2000), nullable=False)
        batch_op.drop_column("weights_hash")
    with op.batch_alter_table("model_file_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_file_uploads_sha256"))
    op.drop_table("model_file_uploads")
    with op.batch_alter_table("base_model_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_base_model_files_sha256"))
    op.drop_table("base_model_files")
