"""Where uploads and results live: one small interface, a local implementation.

Keys are relative paths like ``results/<task_id>.mid``. Local files are served by the API
through expiring signed links, so they open in a browser or a webhook receiver without
the API key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, urlencode

from midiscribe.formats.atomic import atomic_path


class ObjectStore(Protocol):
    def put_file(self, key: str, source: Path) -> None: ...
    def put_stream(self, key: str, source: BinaryIO) -> int: ...
    def fetch_to(self, key: str, dest: Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def url(self, key: str) -> str: ...
    def check(self) -> None: ...


def _safe_key(key: str) -> str:
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
        return self.root / _safe_key(key)

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

    def fetch_to(self, key: str, dest: Path) -> None:
        shutil.copyfile(self.path(key), dest)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def url(self, key: str) -> str:
        return self.signer.url(_safe_key(key))

    def check(self) -> None:
        probe = self.root / ".readyz"
        probe.write_text(str(os.getpid()))
        probe.unlink()
