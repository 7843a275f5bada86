"""The OpenAPI document tells the truth: every status each operation answers, each with the
error envelope; the ``Authorization`` API-key scheme; no validation 422 that never happens.

Routes declare their own statuses with :func:`error_responses`; :func:`install` post-processes the
generated document (FastAPI adds a 422 to every operation with parameters; our validation
errors are 400s).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from midiscribe.service.api.schemas import ErrorResponse

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
COMMON = {
    500: "An unexpected error occurred (quote the request id)",
    503: "The database or the store is unavailable right now: retry after Retry-After seconds",
}
AUTH = {401: "Missing, wrong or revoked API key"}


def error_responses(statuses: dict[int, str], *, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for these statuses, plus 401 (with ``auth``), 500 and 503."""
    merged = (AUTH if auth else {}) | statuses | COMMON
    out: dict[int | str, dict[str, Any]] = {}
    for status, text in sorted(merged.items()):
        entry: dict[str, Any] = {"model": ErrorResponse, "description": text}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[status] = entry
    return out


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                webhooks=app.webhooks.routes,
            )
            _drop_validation_422(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_validation_422(doc: dict[str, Any]) -> None:
    for item in [*doc.get("paths", {}).values(), *doc.get("webhooks", {}).values()]:
        for operation in item.values():
            response = operation.get("responses", {}).get("422")
            ref = str(response.get("content", {}).get("application/json", {}).get("schema", {})) if response else ""
            if "HTTPValidationError" in ref:
                del operation["responses"]["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
