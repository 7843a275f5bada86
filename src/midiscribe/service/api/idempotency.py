"""``Idempotency-Key`` on ``POST /audio_to_midi``, as Stripe's API has it.

A client that sends ``Idempotency-Key: <unique string>`` may repeat the request (after a timeout,
a dropped connection or a 503) without creating a second task:

* the same key with the same request within 24 h (``IDEMPOTENCY_TTL_S``) answers the original
  task, 200 with the original body and ``Idempotent-Replayed: true``;
* the same key with a different request (other fields, or another file) is 422
  ``idempotency_key_reused``, as Stripe and the IETF draft on the header do;
* two requests with one key at the same moment: the first to commit wins, the other answers its task.

Keys are per API key, 1-255 printable ASCII characters. Only submissions that created a task are
remembered: a request refused with a 4xx or 5xx may be corrected and sent again with the same key.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.state import AppState
from midiscribe.service.payloads import QUEUED_MESSAGE
from midiscribe.service.records import idempotency
from midiscribe.service.records.keys import ApiKey

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "A unique string per request: a repeat with the same body within 24 h answers the "
    "original task (header `Idempotent-Replayed: true`); the same key with another body is 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": "^[\\x21-\\x7e]+$"},
}


def header(request: Request) -> str | None:
    """The request's Idempotency-Key, checked; None when there is none."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    value = value.strip()
    if not 1 <= len(value) <= MAX_LENGTH or not all(33 <= ord(c) <= 126 for c in value):
        raise ApiError(
            400, "invalid_parameters", f"{HEADER} must be 1-{MAX_LENGTH} printable ASCII characters without spaces"
        )
    return value


def ttl_s(state: AppState) -> float:
    return state.settings.idempotency_ttl_s


def replay(state: AppState, key: ApiKey, idempotency_key: str, digest: str) -> JSONResponse | None:
    """The original answer if this key was used with this request; 422 if with another; else None."""
    found = idempotency.find(state.engine, key.id, idempotency_key, ttl_s(state))
    if found is None:
        return None
    if found.request_hash != digest:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this {HEADER} was used with a different request (task {found.task_id}); use a new key for a new request",
        )
    body = {"success": True, "task_id": found.task_id, "status": "processing", "message": QUEUED_MESSAGE}
    return JSONResponse(body, headers={"Idempotent-Replayed": "true"})
