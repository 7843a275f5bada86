"""Schema migrations with Alembic, run from code: ``midiscribe db upgrade`` and the embedded start.

The migration scripts ship inside the package (``migrations/``). Databases created before
migrations existed (tables made by ``create_all``, no ``alembic_version``) are stamped at the
first revision, which is exactly that schema, then upgraded. On PostgreSQL an advisory lock
keeps two nodes that start at once from migrating together.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from midiscribe.errors import MidiscribeError

log = logging.getLogger("midiscribe.migrate")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
_LOCK_ID = 0x6D69_6469  # "midi": the advisory lock taken while migrating on PostgreSQL


class SchemaError(MidiscribeError):
    """The database schema is not the one this code needs."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision; None for an empty (or pre-migration) database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply every pending migration; returns the revision the database is now at."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        config = _config(conn)
        if MigrationContext.configure(conn).get_current_revision() is None and inspect(conn).has_table("tasks"):
            log.info("stamping a database created before migrations at revision %s", FIRST_REVISION)
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, revision)
    now = current(engine)
    log.info("database schema at revision %s", now)
    return now


def check(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not this code's (distributed mode)."""
    try:
        found = current(engine)
    except Exception as exc:  # unreachable database: say so rather than a driver traceback
        raise SchemaError(f"cannot read the database schema version: {type(exc).__name__}: {exc}") from exc
    wanted = head()
    if found != wanted:
        raise SchemaError(
            f"the database schema is at revision {found or 'none'}, this code needs {wanted}: "
            "run `midiscribe db upgrade` once (it is safe to run again)"
        )
