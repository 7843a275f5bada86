"""Checking (and making) webhook signatures, per the Standard Webhooks specification.

The public way for a receiver to check that a webhook came from a midiscribe service::

    from midiscribe.webhooks import verify

    if not verify(secret, request.headers, body):   # body: the raw bytes, before any JSON parsing
        return 401

``secret`` is the key's ``whsec_...`` webhook secret (``midiscribe keys create`` prints it). The
signature covers ``webhook-id``, ``webhook-timestamp`` and the exact body bytes; a timestamp more
than ``tolerance_s`` away from now is refused, so a captured delivery cannot be replayed later.
Receivers should also de-duplicate on ``webhook-id``: a retried delivery keeps its id.

Pure standard library: importing this imports nothing of the engine or the service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["sign", "verify"]

DEFAULT_TOLERANCE_S = 300  # five minutes, the specification's suggestion


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``body`` with these ``headers`` was signed with ``secret`` within ``tolerance_s`` of now.

    ``headers`` may be any mapping (a dict, Starlette's or Werkzeug's headers); names are matched
    without regard to case. Missing or malformed headers, or a malformed secret, answer False.
    Any of several space-separated ``v1,`` signatures may match (secret rotation).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, ts_text, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not ts_text or not signatures:
        return False
    try:
        ts = int(ts_text)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    data = body.encode() if isinstance(body, str) else body
    try:
        expected = sign(secret, msg_id, ts, data).split(",", 1)[1]
    except (binascii.Error, ValueError):
        return False
    return any(
        hmac.compare_digest(expected, part.split(",", 1)[1]) for part in signatures.split() if part.startswith("v1,")
    )
