"""Where uploads and results live: one small interface, a local implementation (S3 in ``s3.py``).

Keys are relative paths: uploads at ``uploads/<task_id>/<name>``, results where the store's
``result_key`` says (``results/<task_id>.mid`` here, ``<prefix>/<task_id>.mid`` in S3). Local files
are served by the API through expiring signed links, so they open in a browser or a webhook
receiver without the API key. Nothing outside ``wiring.py`` knows which store is in use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, urlencode

from midiscribe.formats.atomic import atomic_path

MEDIA_TYPES = {
    "mid": "audio/midi",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "mp3": "audio/mpeg",
    "csv": "text/csv",
    "npz": "application/octet-stream",
    "musicxml": "application/vnd.recordare.musicxml+xml",
    "mxl": "application/vnd.recordare.musicxml",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "png": "image/png",
}


class ObjectStore(Protocol):
    """Put, get as a stream, head, link; plus where results go and a readiness check.

    ``put_stream`` stores from the source's position to its end and returns the bytes written;
    ``open`` streams an object, never whole in memory; ``head`` is its size in bytes, or None if
    there is none; ``url`` opens without the API key (signed and expiring, or public);
    ``check`` raises unless the store accepts a write where results go (``/readyz``);
    ``delete`` removes an object (no error if there is none).
    """

    def put_file(self, key: str, source: Path) -> None: ...
    def put_stream(self, key: str, source: BinaryIO) -> int: ...
    def open(self, key: str) -> AbstractContextManager[BinaryIO]: ...
    def fetch_to(self, key: str, dest: Path) -> None: ...
    def head(self, key: str) -> int | None: ...
    def url(self, key: str) -> str: ...
    def result_key(self, task_id: str, ext: str) -> str: ...
    def check(self) -> None: ...
    def delete(self, key: str) -> None: ...


def media_type(key: str) -> str:
    return MEDIA_TYPES.get(key.rpartition(".")[2].lower(), "application/octet-stream")


def safe_key(key: str) -> str:
    parts = [p for p in key.split("/") if p]
    if not parts or any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return "/".join(parts)


class LinkSigner:
    """HMAC-SHA256 over ``key:expires``: links that expire and cannot be forged."""

    def __init__(self, secret: bytes, base_url: str, ttl_s: int) -> None:
        self._secret, self._base, self._ttl = secret, base_url.rstrip("/"), ttl_s

    def signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, key: str) -> str:
        expires = int(time.time()) + self._ttl
        query = urlencode({"expires": expires, "signature": self.signature(key, expires)})
        return f"{self._base}/files/{quote(key)}?{query}"

    def valid(self, key: str, expires: int, signature: str) -> bool:
        return expires >= time.time() and hmac.compare_digest(self.signature(key, expires), signature)


class LocalStore:
    """Objects as files under ``root``."""

    def __init__(self, root: Path, signer: LinkSigner) -> None:
        self.root = root
        self.signer = signer
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / safe_key(key)

    def put_file(self, key: str, source: Path) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)

    def put_stream(self, key: str, source: BinaryIO) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp, tmp.open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        return target.stat().st_size

    @contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        with self.path(key).open("rb") as fh:
            yield fh

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self._open(key)

    def fetch_to(self, key: str, dest: Path) -> None:
        shutil.copyfile(self.path(key), dest)

    def head(self, key: str) -> int | None:
        path = self.path(key)
        return path.stat().st_size if path.is_file() else None

    def url(self, key: str) -> str:
        return self.signer.url(safe_key(key))

    def result_key(self, task_id: str, ext: str) -> str:
        return f"results/{task_id}.{ext}"

    def check(self) -> None:
        """Write, read back and remove a file where results and uploads go."""
        for prefix in ("results", "uploads"):
            folder = self.root / prefix
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".readyz-{os.getpid()}"
            probe.write_text(str(os.getpid()))
            if probe.read_text() != str(os.getpid()):
                raise OSError(f"the store did not return what was written under {prefix}/")
            probe.unlink()

    def delete(self, key: str) -> None:
        """Remove the file, then its folders up to the root while they are empty."""
        path = self.path(key)
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty (or gone)
                break
