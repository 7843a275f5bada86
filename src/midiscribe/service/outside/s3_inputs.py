"""``audio_path`` objects in S3: parse every form of a location, check it (HEAD) and stream it to disk.

S3's errors become our statuses here (FetchError, as for URLs): no bucket or no object 404, denied
403, malformed 400, too large 413, unreachable 502. Messages name the bucket and key, never
credentials or signed URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from midiscribe.service.outside.fetch import FetchError

__all__ = ["S3Inputs", "S3Object", "parse_location"]

_CHUNK = 1024 * 1024
# Legacy us-east-1 buckets allow capitals and underscores; S3 itself refuses anything else we let by.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_REGION = r"(?:[.-](?:dualstack\.)?[a-z0-9-]+)?"
_AWS_PATH_HOST = re.compile(rf"s3{_REGION}\.amazonaws\.com(?:\.cn)?")
_AWS_VIRTUAL_HOST = re.compile(rf"(?P<bucket>.+?)\.s3{_REGION}\.amazonaws\.com(?:\.cn)?")
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED = frozenset(
    {"403", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def parse_location(location: str, endpoint_url: str = "") -> S3Object | None:
    """The object an ``audio_path`` names, or None if it is a plain http(s) URL.

    Accepts ``s3://bucket/key`` (the key as written, no percent-decoding), AWS's virtual-hosted
    ``https://bucket.s3.region.amazonaws.com/key`` and path-style ``https://s3.region.amazonaws.com/bucket/key``,
    and either style on the configured endpoint's host. A URL with a query string (a presigned link)
    stays a plain URL. Raises FetchError 400 for a malformed location.
    """
    if location[:5].lower() == "s3://":
        bucket, _, key = location[5:].partition("/")
        return _checked(bucket, key)
    try:
        parts = urlsplit(location)
        host, port = (parts.hostname or ""), parts.port
    except ValueError:
        return None  # fetch.py explains what is wrong with it
    if parts.scheme not in ("http", "https") or parts.query or parts.username:
        return None
    path = unquote(parts.path).lstrip("/")
    if _AWS_PATH_HOST.fullmatch(host) or _on_endpoint(endpoint_url, host, port, ""):
        bucket, _, key = path.partition("/")
        return _checked(bucket, key)
    virtual = _AWS_VIRTUAL_HOST.fullmatch(host)
    hosted = virtual["bucket"] if virtual else _endpoint_bucket(endpoint_url, host, port)
    return _checked(hosted, path) if hosted else None


def _on_endpoint(endpoint_url: str, host: str, port: int | None, bucket: str) -> bool:
    if not endpoint_url:
        return False
    endpoint = urlsplit(endpoint_url)
    expected = f"{bucket}.{endpoint.hostname}" if bucket else endpoint.hostname
    return host == expected and port == endpoint.port


def _endpoint_bucket(endpoint_url: str, host: str, port: int | None) -> str | None:
    """The bucket of a virtual-hosted URL on the configured endpoint (``bucket.minio.example.com``)."""
    bucket = host.partition(".")[0]
    return bucket if "." in host and _on_endpoint(endpoint_url, host, port, bucket) else None


def _checked(bucket: str, key: str) -> S3Object:
    if not _BUCKET.fullmatch(bucket) or not key or key.endswith("/") or len(key.encode()) > 1024:
        raise FetchError(
            400, "invalid_audio_path", "an S3 audio_path must name a bucket and an object: s3://bucket/key"
        )
    return S3Object(bucket, key)


@contextmanager
def _mapped(obj: S3Object) -> Iterator[None]:
    """Turn boto3's errors about an input into FetchError with our status."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

    try:
        yield
    except ClientError as exc:
        raise _client_error(exc, obj) from exc
    except NoCredentialsError as exc:  # our configuration, not the caller's request
        raise FetchError(500, "s3_credentials_missing", "this server has no AWS credentials") from exc
    except ParamValidationError as exc:
        raise FetchError(400, "invalid_audio_path", f"{obj.uri} is not a valid S3 location") from exc
    except BotoCoreError as exc:
        raise FetchError(502, "upstream_error", f"S3 could not be read ({type(exc).__name__})") from exc


def _client_error(exc: Any, obj: S3Object) -> FetchError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return FetchError(404, "input_not_found", f"bucket {obj.bucket!r} does not exist ({obj.uri})")
    if code in _NOT_FOUND or status == 404:
        return FetchError(404, "input_not_found", f"no object {obj.key!r} in bucket {obj.bucket!r}")
    if code in _DENIED or status == 403:
        return FetchError(403, "access_denied", f"access to {obj.uri} was denied")
    if code == "PreconditionFailed" or status == 412:
        return FetchError(502, "upstream_error", f"{obj.uri} changed while it was read")
    if status == 400:
        return FetchError(400, "invalid_audio_path", f"S3 refused {obj.uri} ({code})")
    return FetchError(502, "upstream_error", f"S3 answered {code or status} for {obj.uri}")


@dataclass(frozen=True)
class _Head:
    size_bytes: int
    etag: str


class S3Inputs:
    """Reads ``audio_path`` objects with the server's credentials, within a size limit.

    ``buckets``, when not empty, are the only buckets a caller may name: otherwise a caller could
    have us read (and report on the existence of) anything our credentials reach.
    """

    def __init__(self, s3: Any, *, max_bytes: int, buckets: tuple[str, ...] = (), endpoint_url: str = "") -> None:
        self._s3, self.max_bytes, self.buckets, self.endpoint_url = s3, max_bytes, buckets, endpoint_url

    def locate(self, location: str) -> S3Object | None:
        return parse_location(location, self.endpoint_url)

    def head(self, obj: S3Object) -> _Head:
        """Size and ETag; FetchError 403, 404 (naming the bucket and key), 413 or 502."""
        if self.buckets and obj.bucket not in self.buckets:
            raise FetchError(403, "access_denied", f"this server does not read from bucket {obj.bucket!r}")
        try:
            with _mapped(obj):
                meta = self._s3.head_object(Bucket=obj.bucket, Key=obj.key)
        except FetchError as exc:  # a HEAD answer has no body to tell a missing bucket from a missing key
            if exc.status == 404 and self._bucket_missing(obj.bucket):
                raise FetchError(404, "input_not_found", f"bucket {obj.bucket!r} does not exist ({obj.uri})") from None
            raise
        size = int(meta.get("ContentLength") or 0)
        if size > self.max_bytes:
            raise FetchError(413, "input_too_large", f"{obj.uri} is {size} bytes, over the {self.max_bytes}-byte limit")
        return _Head(size, str(meta.get("ETag") or ""))

    def _bucket_missing(self, bucket: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            return str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket")
        except BotoCoreError:
            return False
        return False

    def download(self, obj: S3Object, dest: Path, progress: Callable[[int], None] | None = None) -> int:
        """Check again, then stream the object to `dest`; returns the bytes written.

        One GET pinned to the ETag just checked (If-Match), so the size limit holds even if the
        object is replaced meanwhile; read in 1 MiB chunks, never whole in memory.
        """
        head = self.head(obj)
        extra = {"IfMatch": head.etag} if head.etag else {}
        part = dest.with_name(dest.name + ".part")
        try:
            with _mapped(obj):
                body = self._s3.get_object(Bucket=obj.bucket, Key=obj.key, **extra)["Body"]
                with body, part.open("wb") as out:
                    written = self._copy(body, out, obj, progress)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(dest)
        return written

    def _copy(self, body: Any, out: BinaryIO, obj: S3Object, progress: Callable[[int], None] | None) -> int:
        written = 0
        while chunk := body.read(_CHUNK):
            written += len(chunk)
            if written > self.max_bytes:
                raise FetchError(413, "input_too_large", f"{obj.uri} is over the {self.max_bytes}-byte limit")
            out.write(chunk)
            if progress is not None:
                progress(written)
        return written
