"""Build the service's parts from settings: engine, store, fetch policy."""

from __future__ import annotations

from sqlalchemy import Engine

from midiscribe.service.db import init_db, make_engine
from midiscribe.service.fetch import FetchPolicy
from midiscribe.service.settings import Settings
from midiscribe.service.storage import LinkSigner, LocalStore, ObjectStore


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        max_bytes=settings.max_upload_bytes,
        connect_timeout_s=settings.fetch_connect_timeout_s,
        read_timeout_s=settings.fetch_read_timeout_s,
        total_timeout_s=settings.fetch_total_timeout_s,
        max_redirects=settings.fetch_max_redirects,
        allow_networks=tuple(settings.fetch_allow_networks),
    )


def build_store(settings: Settings) -> ObjectStore:
    signer = LinkSigner(settings.link_secret(), settings.base_url, settings.link_ttl_s)
    return LocalStore(settings.data_dir / "objects", signer)


def build_engine(settings: Settings, *, create: bool = True) -> Engine:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    if create:
        init_db(engine)
    return engine
