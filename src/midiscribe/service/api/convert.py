"""POST /api/public/v1/audio_to_midi: JSON or multipart, a task id back at once."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from midiscribe.core.audio import open_audio
from midiscribe.errors import MidiscribeError
from midiscribe.formats.score import score_available
from midiscribe.service.api.errors import ApiError, to_api_error
from midiscribe.service.api.schemas import (
    REQUEST_EXAMPLE,
    URL_EXAMPLE,
    ConversionRequest,
    ErrorResponse,
    QueuedResponse,
)
from midiscribe.service.api.state import AppState, app_state, require_key
from midiscribe.service.outside.fetch import FetchError, check_url, probe
from midiscribe.service.outside.s3_inputs import S3Inputs, S3Object
from midiscribe.service.payloads import QUEUED_MESSAGE
from midiscribe.service.records import tasks
from midiscribe.service.records.keys import ApiKey
from midiscribe.service.wiring import s3_inputs
from midiscribe.service.work import dispatch

log = logging.getLogger("midiscribe.api")
router = APIRouter()
FILE_FIELDS = ("audio_file", "file")

_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ConversionRequest.model_json_schema(),
                "examples": {"s3": {"value": REQUEST_EXAMPLE}, "https": {"value": URL_EXAMPLE}},
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "audio_file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the audio to convert",
                        },
                        **{k: v for k, v in ConversionRequest.model_json_schema()["properties"].items()},
                    },
                }
            },
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Invalid audio_path or missing required parameters",
        401: "Missing or wrong API key",
        403: "Access to the S3 object denied",
        404: "Input audio not found",
        413: "Input larger than the limit",
        422: "Unsupported audio format",
        429: "Too many requests or concurrent tasks for this key",
        500: "An unexpected error occurred",
    }.items()
}


@router.post(
    "/api/public/v1/audio_to_midi",
    response_model=QueuedResponse,
    summary="Convert an audio file into a MIDI file",
    description="Queues a conversion of `audio_path` (https:// URL or s3:// location) or of an uploaded "
    "`audio_file`; returns a task id at once. The result is POSTed to `webhook_url` when done and is "
    "also available from `GET /api/public/v1/tasks/{task_id}`.",
    openapi_extra=_OPENAPI_BODY,
    responses=_RESPONSES,
    tags=["audio_to_midi"],
)
async def audio_to_midi(request: Request, key: ApiKey = Depends(require_key)) -> QueuedResponse:  # noqa: B008
    state = app_state(request)
    fields, upload = await _read_body(request)
    try:
        body = ConversionRequest.model_validate(fields)
    except ValidationError as exc:
        raise ApiError(400, "invalid_parameters", _describe(exc)) from None
    if body.render_score is not None:
        missing = score_available(body.render_score)
        if missing:
            raise ApiError(400, "score_rendering_unavailable", f"render_score: {missing}")
    await _check_limits(state, key)
    if body.webhook_url:
        await _check_webhook(state, body.webhook_url)
    task_id = str(uuid.uuid4())
    audio_s: float | None = None  # known for uploads: routes the task and sets its time limit
    if upload is not None:
        kind, ref, name, audio_s = await _accept_upload(state, task_id, upload)
    else:
        kind, ref, name = await _accept_location(state, body.location)
    await run_in_threadpool(
        tasks.create_task,
        state.engine,
        key_id=key.id,
        request=body.stored(),
        input_kind=kind,
        input_ref=ref,
        input_name=name,
        webhook_url=body.webhook_url,
        task_id=task_id,
        input_duration_s=audio_s,
    )
    await run_in_threadpool(dispatch.submit, state.engine, state.dispatcher, task_id, audio_s)
    log.info("task %s queued for key %s (%s)", task_id, key.prefix, kind)
    return QueuedResponse(task_id=task_id, status="processing", message=QUEUED_MESSAGE)


async def _read_body(request: Request) -> tuple[dict[str, Any], UploadFile | None]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_part_size=1024 * 1024)
        upload = next((form[f] for f in FILE_FIELDS if isinstance(form.get(f), UploadFile)), None)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return fields, upload if isinstance(upload, UploadFile) else None
    raw = await request.body()
    if not raw.strip():
        raise ApiError(
            400,
            "invalid_parameters",
            "the request has no body: send JSON with audio_path, or upload audio_file",
        )
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_parameters", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_parameters", "the JSON body must be an object")
    return data, None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def _check_limits(state: AppState, key: ApiKey) -> None:
    wait = state.limiter.allow(key.id)
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many requests for this API key", {"Retry-After": str(int(wait) + 1)})
    limit = state.settings.max_concurrent_tasks_per_key
    if await run_in_threadpool(tasks.active_count, state.engine, key.id) >= limit:
        raise ApiError(429, "too_many_tasks", f"this API key already has {limit} tasks queued or running")


async def _check_webhook(state: AppState, url: str) -> None:
    try:
        await run_in_threadpool(check_url, url, state.policy)
    except FetchError as exc:
        raise ApiError(400, "invalid_webhook_url", f"webhook_url: {exc}") from None


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip("._")[:100]
    return cleaned or "upload"


async def _accept_upload(state: AppState, task_id: str, upload: UploadFile) -> tuple[str, str, str, float | None]:
    name = safe_filename(upload.filename)
    audio_s = await run_in_threadpool(_sniff, upload)
    key = f"uploads/{task_id}/{name}"
    await run_in_threadpool(state.store.put_stream, key, upload.file)
    return "upload", key, name, audio_s


def _sniff(upload: UploadFile) -> float | None:
    """Refuse, at submit time, what is not decodable audio (422); the duration if the container says."""
    upload.file.seek(0, 2)
    if upload.file.tell() == 0:
        raise ApiError(422, "unsupported_audio", "the uploaded file is empty")
    upload.file.seek(0)
    try:
        with open_audio(upload.file) as reader:
            next(iter(reader.chunks()), None)
            return reader.info.duration_s
    except MidiscribeError as exc:
        raise to_api_error(exc) from None
    finally:
        upload.file.seek(0)


async def _accept_location(state: AppState, location: str | None) -> tuple[str, str, str]:
    if not location:
        raise ApiError(400, "invalid_parameters", "audio_path is required (or upload the audio as audio_file)")
    scheme = location.split(":", 1)[0].lower() if ":" in location else ""
    inputs = await run_in_threadpool(s3_inputs, state.settings)  # the first call imports boto3
    if scheme == "s3" and inputs is None:
        raise ApiError(
            400,
            "s3_not_configured",
            "audio_path is an s3:// location but S3 is not configured on this server",
        )
    if scheme not in ("http", "https", "s3"):
        raise ApiError(400, "invalid_audio_path", "audio_path must be an https:// or http:// URL or an s3:// location")
    try:
        obj = inputs.locate(location) if inputs is not None else None
    except FetchError as exc:
        raise ApiError(exc.status, exc.code, f"audio_path: {exc}") from None
    if inputs is not None and obj is not None:  # s3:// or an https URL of an object in S3
        return await _accept_s3(inputs, obj)
    try:
        await run_in_threadpool(check_url, location, state.policy)
        await run_in_threadpool(probe, location, state.policy)
    except FetchError as exc:
        if exc.status == 502:  # the source is down or slow right now: the worker will try again
            log.info("probe of %s failed (%s); queueing anyway", location.split("?")[0], exc)
        else:
            raise ApiError(exc.status, exc.code, f"audio_path: {exc}") from None
    name = location.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return "url", location, safe_filename(name)


async def _accept_s3(inputs: S3Inputs, obj: S3Object) -> tuple[str, str, str]:
    """HEAD the object now, so a missing, denied or too large input is answered at once."""
    try:
        await run_in_threadpool(inputs.head, obj)
    except FetchError as exc:
        if exc.status != 502:
            raise ApiError(exc.status, exc.code, f"audio_path: {exc}") from None
        log.info("HEAD of %s failed (%s); queueing anyway", obj.uri, exc)
    return "s3", obj.uri, safe_filename(obj.name)
