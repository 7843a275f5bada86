"""Build the service's parts from settings: engine, store, fetch policy, S3 inputs.

The only place that knows which store is in use."""

from __future__ import annotations

from sqlalchemy import Engine

from midiscribe.service.outside.fetch import FetchPolicy
from midiscribe.service.outside.s3 import S3Config, S3Store, client
from midiscribe.service.outside.s3_inputs import S3Inputs
from midiscribe.service.outside.storage import LinkSigner, LocalStore, ObjectStore
from midiscribe.service.records.db import init_db, make_engine
from midiscribe.service.records.migrate import check as check_schema
from midiscribe.service.settings import Settings


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
    if settings.store == "s3":
        return S3Store(
            client(s3_config(settings)),
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            url_mode=settings.s3_url_mode,
            public_base_url=settings.s3_public_base_url,
            presign_ttl_s=settings.s3_presign_ttl_s,
        )
    signer = LinkSigner(settings.link_secret(), settings.base_url, settings.link_ttl_s)
    return LocalStore(settings.data_dir / "objects", signer)


def s3_config(settings: Settings) -> S3Config:
    return S3Config(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        addressing_style=settings.s3_addressing_style,
        connect_timeout_s=settings.fetch_connect_timeout_s,
        read_timeout_s=settings.fetch_read_timeout_s,
    )


def s3_inputs(settings: Settings) -> S3Inputs | None:
    """The reader of s3:// inputs, or None when they are off (they answer 400 s3_not_configured)."""
    if not settings.s3_inputs_enabled:
        return None
    return S3Inputs(
        client(s3_config(settings)),
        max_bytes=settings.max_upload_bytes,
        buckets=tuple(settings.s3_input_buckets),
        endpoint_url=settings.s3_endpoint_url,
    )


def build_engine(settings: Settings, *, create: bool = True, busy_timeout_s: float = 30.0) -> Engine:
    """The engine; with ``create``, the schema brought up to date (embedded) or checked to be
    (distributed: several nodes must not migrate at once; ``midiscribe db upgrade`` does it).
    The API's engine has a short ``busy_timeout_s`` (settings), so a locked database is a fast 503."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url, busy_timeout_s=busy_timeout_s)
    if create and settings.distributed:
        check_schema(engine)
    elif create:
        init_db(engine)
    return engine
