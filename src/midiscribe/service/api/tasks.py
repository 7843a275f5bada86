"""GET /api/public/v1/tasks/{task_id} and the key's task list (our additions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.state import AppState, app_state, require_key
from midiscribe.service.payloads import file_urls, notation_urls
from midiscribe.service.records import tasks
from midiscribe.service.records.keys import ApiKey

router = APIRouter(tags=["tasks"])


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def task_view(state: AppState, row: Any, *, with_webhook: bool = True) -> dict[str, Any]:
    """A task as the status endpoint shows it; file links are signed afresh on each read."""
    result = row.result or {}
    view: dict[str, Any] = {
        "success": True,
        "task_id": row.id,
        "conversion_id": row.conversion_id,
        "status": row.status,
        "progress": row.progress,
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "input": _input_view(state, row),
        "options": row.request,
        "webhook_url": row.webhook_url,
        "result": None,
        "error": None,
    }
    if row.status == "completed":
        view["result"] = (
            file_urls(result, state.store)
            | notation_urls(result, state.store)
            | {
                "model_outputs_path": state.store.url(result["outputs"]) if result.get("outputs") else "",
                "n_notes": row.n_notes,
                "duration_s": row.duration_s,
            }
        )
    if row.status == "failed":
        view["error"] = {"status": row.error_status, "code": row.error_code, "message": row.error_message}
    if with_webhook and row.webhook_url:
        delivery, attempts = tasks.webhook_log(state.engine, row.id)
        view["webhook"] = (
            None
            if delivery is None
            else {
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
        )
    return view


def _input_view(state: AppState, row: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"kind": row.input_kind, "name": row.input_name}
    if row.input_kind == "upload":
        view["file_path"] = state.store.url(row.input_ref)  # so the web page can play the original
    else:
        view["audio_path"] = row.input_ref
    return view


def owned_task(state: AppState, key: ApiKey, task_id: str) -> Any:
    row = tasks.get_task(state.engine, task_id)
    if row is None or row.key_id != key.id:  # another key's task does not exist, as far as this key knows
        raise ApiError(404, "task_not_found", f"no task {task_id} for this API key")
    return row


@router.get(
    "/api/public/v1/tasks/{task_id}",
    summary="A task's status, progress, options, result links and webhook log",
)
async def get_task(task_id: str, request: Request, key: ApiKey = Depends(require_key)) -> dict[str, Any]:  # noqa: B008
    state = app_state(request)

    def read() -> dict[str, Any]:
        return task_view(state, owned_task(state, key, task_id))

    return await run_in_threadpool(read)


@router.get("/api/public/v1/tasks", summary="This key's recent tasks, newest first")
async def list_tasks(
    request: Request,
    key: ApiKey = Depends(require_key),  # noqa: B008
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
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
