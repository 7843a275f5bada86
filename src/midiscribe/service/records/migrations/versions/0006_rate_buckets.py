"""Rate limits as token buckets (GCRA): one row per key with the time its bucket is next free,
in place of 0005's per-minute counters (issue 12, defect 8; see ``records/ratelimits.py``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("rate_counters")  # counts of the last minute or two: nothing worth keeping
    op.create_table(
        "rate_buckets",
        sa.Column("bucket", sa.String(200), primary_key=True),
        sa.Column("tat", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.create_table(
        "rate_counters",
        sa.Column("bucket", sa.String(200), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
