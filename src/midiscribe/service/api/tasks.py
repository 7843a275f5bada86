"""GET /api/public/v1/tasks/{task_id}, the key's task list, and DELETE (our additions)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.openapi import error_responses
from midiscribe.service.api.outages import dependency
from midiscribe.service.api.state import AppState, app_state, require_key
from midiscribe.service.api.views import TaskList, TaskView
from midiscribe.service.payloads import cancelled_payload, file_urls, notation_urls
from midiscribe.service.records import tasks
from midiscribe.service.records.keys import ApiKey
from midiscribe.service.work.retention import purge_task_files

router = APIRouter(tags=["tasks"])
MAX_OFFSET = 1_000_000
_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NOT_FOUND = {404: "No such task for this API key"}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def expires_at(state: AppState, row: Any) -> dt.datetime | None:
    """When a finished task's files go (RESULT_TTL_DAYS after it finished); None: kept."""
    days = state.settings.result_ttl_days
    if days <= 0 or row.finished_at is None or row.files_deleted_at is not None:
        return None
    finished: dt.datetime = row.finished_at
    return finished + dt.timedelta(days=days)


def task_view(state: AppState, row: Any, *, with_webhook: bool = True) -> dict[str, Any]:
    """A task as the status endpoint shows it; file links are signed afresh on each read."""
    result = row.result or {}
    kept = row.files_deleted_at is None
    view: dict[str, Any] = {
        "success": True,
        "task_id": row.id,
        "conversion_id": row.conversion_id,
        "status": row.status,
        "progress": row.progress,
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "expires_at": _iso(expires_at(state, row)),
        "files_deleted_at": _iso(row.files_deleted_at),
        "input": _input_view(state, row, kept),
        "options": row.request,
        "webhook_url": row.webhook_url,
        "result": None,
        "error": None,
    }
    if row.status == "completed" and kept:
        view["result"] = (
            file_urls(result, state.store)
            | notation_urls(result, state.store)
            | {
                "model_outputs_path": state.store.url(result["outputs"]) if result.get("outputs") else "",
                "n_notes": row.n_notes,
                "duration_s": row.duration_s,
            }
            | _music_view(result)
        )
    if row.status in ("failed", "cancelled"):
        view["error"] = {"status": row.error_status, "code": row.error_code, "message": row.error_message}
    if with_webhook and row.webhook_url:
        view["webhook"] = _webhook_view(state, row.id)
    return view


_MUSIC_FIELDS = ("tempo_bpm", "tempo_reason", "time_signature", "beats", "key")


def _music_view(result: dict[str, Any]) -> dict[str, Any]:
    """The music fields of the result (null for tasks finished before they were recorded)."""
    music = result.get("music") or {}
    return {name: music.get(name) for name in _MUSIC_FIELDS}


def _webhook_view(state: AppState, task_id: str) -> dict[str, Any] | None:
    delivery, attempts = tasks.webhook_log(state.engine, task_id)
    if delivery is None:
        return None
    return {
        "webhook_id": delivery.webhook_id,
        "state": delivery.state,
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "attempts": [
            {
                "attempt": a.attempt,
                "at": _iso(a.at),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ],
    }


def _input_view(state: AppState, row: Any, kept: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"kind": row.input_kind, "name": row.input_name}
    if row.input_kind == "upload":
        view["file_path"] = state.store.url(row.input_ref) if kept else ""  # the web page plays the original
    else:
        view["audio_path"] = row.input_ref
    return view


def owned_task(state: AppState, key: ApiKey, task_id: str) -> Any:
    row = tasks.get_task(state.engine, task_id) if _TASK_ID.fullmatch(task_id) else None
    if row is None or row.key_id != key.id:  # another key's task does not exist, as far as this key knows
        raise ApiError(404, "task_not_found", "no such task for this API key")
    return row


@router.get(
    "/api/public/v1/tasks/{task_id}",
    summary="A task's status, progress, options, result links and webhook log",
    response_model=TaskView,
    response_model_exclude_none=False,
    responses=error_responses(_NOT_FOUND),
)
async def get_task(task_id: str, request: Request, key: ApiKey = Depends(require_key)) -> Any:  # noqa: B008
    state = app_state(request)

    def read() -> dict[str, Any]:
        return task_view(state, owned_task(state, key, task_id))

    return await run_in_threadpool(read)


@router.get(
    "/api/public/v1/tasks",
    summary="This key's recent tasks, newest first",
    response_model=TaskList,
    responses=error_responses({400: "limit or offset out of range"}),
)
async def list_tasks(
    request: Request,
    key: ApiKey = Depends(require_key),  # noqa: B008
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> Any:
    state = app_state(request)

    def read() -> dict[str, Any]:
        rows, total = tasks.list_tasks(state.engine, key.id, limit=limit, offset=offset)
        return {
            "success": True,
            "total": total,
            "limit": limit,
            "offset": offset,
            "tasks": [task_view(state, r, with_webhook=False) for r in rows],
        }

    return await run_in_threadpool(read)


@router.delete(
    "/api/public/v1/tasks/{task_id}",
    summary="Cancel a queued or running task, and delete its stored files",
    description="A queued task is cancelled at once; a running one stops at its worker's next progress "
    "step. Its webhook (if any) says `Audio to Midi Cancelled` with error code `task_cancelled`. The "
    "task's upload and results are deleted from the store (their links then answer 410); the record "
    "stays, so its status can still be read. Deleting again answers the same.",
    response_model=TaskView,
    responses=error_responses(_NOT_FOUND),
)
async def delete_task(task_id: str, request: Request, key: ApiKey = Depends(require_key)) -> Any:  # noqa: B008
    state = app_state(request)

    def work() -> dict[str, Any]:
        row = owned_task(state, key, task_id)
        if row.status in tasks.ACTIVE:
            tasks.cancel(state.engine, row.id, cancelled_payload(row))
        if row.files_deleted_at is None:
            with dependency("store"):
                purge_task_files(state.store, state.engine, row)
        return task_view(state, tasks.get_task(state.engine, row.id))

    return await run_in_threadpool(work)
