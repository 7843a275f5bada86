"""API keys: shown once, stored as SHA-256 hashes; each key has a Standard Webhooks secret."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from midiscribe.service.records.db import api_keys, utcnow

KEY_PREFIX = "ms_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    webhook_secret: str
    revoked: bool
    max_audio_seconds_per_day: float | None = None  # None: the server's default


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is as safe as a slow one here.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, name: str = "", *, max_audio_seconds_per_day: float | None = None) -> tuple[str, ApiKey]:
    """A new key (returned once, never stored) and its record."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id=uuid.uuid4().hex,
        name=name,
        prefix=key[:10],
        webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        revoked=False,
        max_audio_seconds_per_day=max_audio_seconds_per_day,
    )
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                id=record.id,
                name=name,
                key_hash=hash_key(key),
                key_prefix=record.prefix,
                webhook_secret=record.webhook_secret,
                created_at=utcnow(),
                max_audio_seconds_per_day=max_audio_seconds_per_day,
            )
        )
    return key, record


def _record(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.key_prefix,
        webhook_secret=row.webhook_secret,
        revoked=row.revoked_at is not None,
        max_audio_seconds_per_day=row.max_audio_seconds_per_day,
    )


def lookup(engine: Engine, key: str) -> ApiKey | None:
    """The active key record for a presented key, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(key))).first()
    if row is None or row.revoked_at is not None:
        return None
    return _record(row)


def get_key(engine: Engine, key_id: str) -> ApiKey | None:
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return _record(row) if row is not None else None


def list_keys(engine: Engine) -> list[tuple[ApiKey, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
    return [(_record(r), r.created_at) for r in rows]


def revoke(engine: Engine, id_or_prefix: str) -> int:
    """Revoke keys whose id or shown prefix matches; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            update(api_keys)
            .where((api_keys.c.id == id_or_prefix) | (api_keys.c.key_prefix == id_or_prefix))
            .where(api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return int(result.rowcount)


def set_quota(engine: Engine, id_or_prefix: str, seconds_per_day: float | None) -> int:
    """Set (or, with None, clear) a key's daily audio quota; how many keys matched."""
    with engine.begin() as conn:
        result = conn.execute(
            update(api_keys)
            .where((api_keys.c.id == id_or_prefix) | (api_keys.c.key_prefix == id_or_prefix))
            .values(max_audio_seconds_per_day=seconds_per_day)
        )
    return int(result.rowcount)


def count_keys(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(api_keys.c.id)).all())
