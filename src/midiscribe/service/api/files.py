"""Result files behind expiring signed links, and the health endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.state import app_state
from midiscribe.service.outside.storage import LocalStore, media_type

router = APIRouter()


@router.get("/files/{key:path}", tags=["files"], summary="A result file (signed link, no API key needed)")
async def get_file(key: str, request: Request, expires: int = Query(...), signature: str = Query(...)) -> FileResponse:
    state = app_state(request)
    store = state.store
    if not isinstance(store, LocalStore) or not store.signer.valid(key, expires, signature):
        raise ApiError(
            403,
            "invalid_link",
            "this link is invalid or has expired; ask the task status endpoint for a new one",
        )
    try:
        path = store.path(key)
    except ValueError:
        raise ApiError(404, "file_not_found", "no such file") from None
    if not path.is_file():
        raise ApiError(404, "file_not_found", "no such file")
    return FileResponse(path, media_type=media_type(path.name), filename=path.name)


@router.get("/healthz", tags=["health"], summary="The API process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], summary="Database, store and workers are reachable")
async def readyz(request: Request) -> JSONResponse:
    state = app_state(request)

    def check() -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            with state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            state.store.check()
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"error: {type(exc).__name__}"
        checks["workers"] = "ok" if state.workers_alive() else "error: no worker is running"
        return checks

    checks = await run_in_threadpool(check)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
