"""S3 and S3-compatible stores (AWS, MinIO, Ceph, R2, Wasabi) through boto3, the ``s3`` extra.

:func:`client` builds the one boto3 client a process uses per configuration; :class:`S3Store` is
the ``ObjectStore`` for uploads and results, with presigned or public links. Inputs named by
``audio_path`` are read by ``s3_inputs``. boto3 is imported on first use. Credentials come from
the standard AWS chain (environment, profile, instance role); endpoint, region and addressing
style from settings.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from midiscribe.errors import MidiscribeError
from midiscribe.service.outside.storage import media_type, safe_key

__all__ = ["S3Config", "S3Store", "client"]

_MiB = 1024 * 1024


@dataclass(frozen=True)
class S3Config:
    """How to reach the store; hashable, so one client serves each process."""

    endpoint_url: str = ""
    region: str = ""
    addressing_style: str = "auto"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0


@functools.lru_cache(maxsize=4)
def client(config: S3Config) -> Any:
    """A boto3 S3 client (thread-safe), one per config and process."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # the settings check this at start; this is for library use
        raise MidiscribeError("S3 support needs boto3: pip install 'midiscribe[s3]'") from exc
    options = Config(
        s3={"addressing_style": config.addressing_style},
        signature_version="s3v4",
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
        retries={"mode": "standard", "max_attempts": 3},
    )
    session = boto3.session.Session()  # its own session: boto3's default one is not thread-safe
    return session.client(
        "s3", endpoint_url=config.endpoint_url or None, region_name=config.region or None, config=options
    )


@functools.lru_cache(maxsize=1)
def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    # Multipart above 16 MiB, 16 MiB parts, 4 at a time: at most 64 MiB of parts in memory.
    return TransferConfig(multipart_threshold=16 * _MiB, multipart_chunksize=16 * _MiB, max_concurrency=4)


class S3Store:
    """Uploads and results in one bucket; results at ``<prefix>/<task_id>.<ext>``.

    Links are presigned (``url_mode="presigned"``, valid ``presign_ttl_s``), or ``public_base_url`` +
    key for results (``"public"``, for a bucket or CDN that serves ``<prefix>/*`` to anyone); uploads
    are always presigned, so they need not be public. Errors here are ours (500), not the caller's.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        *,
        prefix: str = "AudioToMidi",
        url_mode: str = "presigned",
        public_base_url: str = "",
        presign_ttl_s: int = 7 * 24 * 3600,
    ) -> None:
        self._s3, self.bucket, self.prefix = s3, bucket, prefix.strip("/")
        self.url_mode, self.public_base_url, self.presign_ttl_s = url_mode, public_base_url.rstrip("/"), presign_ttl_s

    def put_file(self, key: str, source: Path) -> None:
        key = safe_key(key)
        extra = {"ContentType": media_type(key)}
        self._s3.upload_file(str(source), self.bucket, key, ExtraArgs=extra, Config=_transfer_config())

    def put_stream(self, key: str, source: BinaryIO) -> int:
        key = safe_key(key)
        extra = {"ContentType": media_type(key)}
        if not source.seekable():
            counted = _Counting(source)
            self._s3.upload_fileobj(counted, self.bucket, key, ExtraArgs=extra, Config=_transfer_config())
            return counted.count
        start = source.tell()
        size = source.seek(0, 2) - start
        source.seek(start)
        self._s3.upload_fileobj(source, self.bucket, key, ExtraArgs=extra, Config=_transfer_config())
        return size

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        body: AbstractContextManager[BinaryIO] = self._s3.get_object(Bucket=self.bucket, Key=safe_key(key))["Body"]
        return body

    def fetch_to(self, key: str, dest: Path) -> None:
        self._s3.download_file(self.bucket, safe_key(key), str(dest), Config=_transfer_config())

    def head(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            meta = self._s3.head_object(Bucket=self.bucket, Key=safe_key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        return int(meta.get("ContentLength") or 0)

    def url(self, key: str) -> str:
        key = safe_key(key)
        is_result = key.rpartition("/")[0] == self.prefix
        if self.url_mode == "public" and self.public_base_url and is_result:
            return f"{self.public_base_url}/{quote(key)}"
        params = {"Bucket": self.bucket, "Key": key}
        url: str = self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=self.presign_ttl_s)
        return url

    def result_key(self, task_id: str, ext: str) -> str:
        return f"{self.prefix}/{task_id}.{ext}" if self.prefix else f"{task_id}.{ext}"

    def check(self) -> None:
        """Write and remove a small object where results go: a bucket we may read but not write fails."""
        key = f"{self.prefix}/.readyz" if self.prefix else ".readyz"
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=b"ok")
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=safe_key(key))


class _Counting:
    """A read-only stream that counts what was read (for sources that cannot tell their size)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data
