"""Rate limits shared by every API node (issue 12, defect 8): per key, the time its bucket is next
free (GCRA), for the database-backed limiter (used when the broker is not Redis).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"  # issue 12's worker heartbeats (0004) are written beside this: chain after them on merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("bucket", sa.String(200), primary_key=True),
        sa.Column("tat", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
