"""Worker heartbeats (issue 12, defect 5): each `midiscribe worker` node records that it lives, what it
is doing and when it last received a task, so ``/readyz`` tells a listening worker from a deaf one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("queues", sa.String(300), nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("busy", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("beat_at", _TS, nullable=False),
        sa.Column("consumed_at", _TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
