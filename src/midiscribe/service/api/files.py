"""Result files behind expiring signed links, and the health endpoints."""

from __future__ import annotations

import os
import re
import socket
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.errors import ApiError, retry_after
from midiscribe.service.api.openapi import error_responses
from midiscribe.service.api.state import AppState, app_state
from midiscribe.service.outside.storage import MEDIA_TYPES, LocalStore, media_type
from midiscribe.service.records import tasks, workers
from midiscribe.service.records.readiness import check_write

router = APIRouter()
_TASK_OF_KEY = re.compile(r"^(?:results/|uploads/)([0-9a-f-]{36})(?:[./]|$)")
_INVALID_LINK = "this link is invalid or has expired; ask the task status endpoint for a new one"
_FILE_TYPES = sorted(set(MEDIA_TYPES.values()))


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
    workers: list[dict[str, Any]] | None = Field(
        default=None,
        description="distributed mode: each worker node with a recent heartbeat, its state (listening, "
        "broker_down, deaf), busy slots and seconds since its last beat and its last received task",
    )


@router.get(
    "/files/{key:path}",
    tags=["files"],
    summary="A result file (signed link, no API key needed)",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in _FILE_TYPES},
        },
        **error_responses(
            {
                403: "The link's signature is missing, wrong or expired",
                404: "No such file",
                410: "The task's files were deleted (expired after RESULT_TTL_DAYS, or deleted by its owner)",
            },
            auth=False,
        ),
    },
)
async def get_file(
    key: str,
    request: Request,
    expires: str | None = Query(None),
    signature: str | None = Query(None),
) -> FileResponse:
    state = app_state(request)
    store = state.store
    valid = (
        isinstance(store, LocalStore)
        and expires is not None
        and expires.isdigit()
        and len(expires) <= 12
        and signature is not None
        and store.signer.valid(key, int(expires), signature)
    )
    if not valid:
        raise ApiError(403, "invalid_link", _INVALID_LINK)
    assert isinstance(store, LocalStore)
    await run_in_threadpool(_check_not_deleted, state, key)
    try:
        path = store.path(key)
    except ValueError:
        raise ApiError(404, "file_not_found", "no such file") from None
    if not path.is_file():
        raise ApiError(404, "file_not_found", "no such file")
    return FileResponse(path, media_type=media_type(path.name), filename=path.name)


def _check_not_deleted(state: AppState, key: str) -> None:
    match = _TASK_OF_KEY.match(key)
    row = tasks.get_task(state.engine, match.group(1)) if match else None
    if row is not None and row.files_deleted_at is not None:
        raise ApiError(
            410,
            "file_expired",
            "this task's files were deleted (they are kept RESULT_TTL_DAYS, or until the task is deleted)",
        )


@router.get("/healthz", tags=["health"], summary="The API process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["health"],
    summary="Database (a write and read), store (a write) and workers are ready",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Not ready: the checks say which part is down",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    state = app_state(request)
    node = f"{socket.gethostname()}:{os.getpid()}"[:100]

    def check() -> tuple[dict[str, str], list[dict[str, Any]] | None]:
        checks: dict[str, str] = {}
        try:
            check_write(state.engine, node)
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "error: cannot write to the database"
        try:
            state.store.check()
            checks["store"] = "ok"
        except Exception:
            checks["store"] = "error: the store does not accept writes"
        if not state.settings.distributed:
            checks["workers"] = "ok" if state.workers_alive() else "error: no worker is running"
            return checks, None
        # issue 12, defect 5: the broker and the workers apart; workers by the heartbeats they write
        checks["broker"] = "ok" if state.dispatcher.healthy() else "error: the broker is unreachable"
        try:
            nodes = workers.live(state.engine, state.settings.worker_stale_after_s)
        except Exception:
            checks["workers"] = "error: cannot read worker heartbeats (database)"
            return checks, None
        checks["workers"] = workers.summary(nodes)
        return checks, nodes

    checks, nodes = await run_in_threadpool(check)
    ready = all(v == "ok" or v.startswith("degraded") for v in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    if nodes is not None:
        body["workers"] = nodes
    return JSONResponse(
        body,
        status_code=200 if ready else 503,
        headers=None if ready else retry_after(5),
    )
