"""Hardening (issue 11): per-key quotas and usage, Idempotency-Key records, deleted files
(retention, cancel/delete), and the readiness row /readyz writes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("max_audio_seconds_per_day", sa.Float, nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("files_deleted_at", _TS, nullable=True))
    op.create_table(
        "key_usage",
        sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id"), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("audio_s", sa.Float, nullable=False),
        sa.Column("tasks", sa.Integer, nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id"), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])
    op.create_table(
        "readiness",
        sa.Column("node", sa.String(100), primary_key=True),
        sa.Column("checked_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("readiness")
    op.drop_index("ix_idempotency_created", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("key_usage")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("files_deleted_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_audio_seconds_per_day")
