"""base_models.capabilities: per-task layers, max positions, unsupported tasks

Revision ID: 0003_numerics
Revises: 0002_feed
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0003_numerics"
down_revision: str | None = "0002_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capabilities", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.drop_column("capabilities")
