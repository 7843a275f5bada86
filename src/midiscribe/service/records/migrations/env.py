"""Alembic environment: run migrations on the connection ``migrate.py`` passes in."""

from __future__ import annotations

from alembic import context

from midiscribe.service.records.db import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations with `midiscribe db upgrade` (midiscribe.service.records.migrate)")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
