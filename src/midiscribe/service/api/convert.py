"""POST /api/public/v1/audio_to_midi: JSON or multipart, a task id back at once.

Order of checks: key -> rate -> body (streamed, limits) -> fields (strict types) -> a repeated
``Idempotency-Key`` answers its original task -> concurrency -> webhook URL -> input (upload
sniffed for format and duration; URL checked and probed; S3 HEAD) -> daily quota -> task row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from midiscribe.core.audio import open_audio
from midiscribe.errors import MidiscribeError
from midiscribe.formats.score import score_available
from midiscribe.service.api import idempotency as idem
from midiscribe.service.api.bodies import Upload, read_body
from midiscribe.service.api.errors import ApiError, retry_after, to_api_error
from midiscribe.service.api.openapi import error_responses
from midiscribe.service.api.outages import dependency
from midiscribe.service.api.schemas import (
    REQUEST_EXAMPLE,
    URL_EXAMPLE,
    ConversionRequest,
    QueuedResponse,
)
from midiscribe.service.api.state import AppState, app_state, require_key
from midiscribe.service.outside.fetch import FetchError, check_url, probe
from midiscribe.service.outside.s3_inputs import S3Inputs, S3Object
from midiscribe.service.payloads import QUEUED_MESSAGE
from midiscribe.service.records import tasks, usage
from midiscribe.service.records.keys import ApiKey
from midiscribe.service.wiring import s3_inputs
from midiscribe.service.work import dispatch
from midiscribe.service.workdir import process_dir

log = logging.getLogger("midiscribe.api")
router = APIRouter()

_FIELDS = ConversionRequest.model_json_schema()
_OPENAPI: dict[str, Any] = {
    "parameters": [idem.OPENAPI_PARAMETER],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _FIELDS,
                "examples": {"s3": {"value": REQUEST_EXAMPLE}, "https": {"value": URL_EXAMPLE}},
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audio_file"],
                    "properties": {
                        "audio_file": {"type": "string", "format": "binary", "description": "the audio to convert"},
                        **{k: v for k, v in _FIELDS["properties"].items() if k not in ("audio_path", "audio_url")},
                    },
                },
                "encoding": {"audio_file": {"contentType": "application/octet-stream"}},
            },
        },
    },
}
_ERRORS = {
    400: "Invalid audio_path or webhook_url, missing or mistyped parameters, a malformed body",
    403: "Access to the S3 object denied",
    404: "Input audio not found",
    413: "Input larger than MAX_UPLOAD_BYTES, or longer than MAX_AUDIO_DURATION_S",
    415: "The body is neither JSON nor a form",
    422: "Unsupported audio format, or an Idempotency-Key reused with another body",
    429: "Over the key's rate, concurrent-task limit or daily audio quota",
}


@router.post(
    "/api/public/v1/audio_to_midi",
    response_model=QueuedResponse,
    summary="Convert an audio file into a MIDI file",
    description="Queues a conversion of `audio_path` (https:// URL or s3:// location) or of an uploaded "
    "`audio_file`; returns a task id at once. The result is POSTed to `webhook_url` when done and is "
    "also available from `GET /api/public/v1/tasks/{task_id}`. With an `Idempotency-Key` header, a repeat "
    "of the same request within 24 h answers the original task instead of queueing another.",
    openapi_extra=_OPENAPI,
    responses=error_responses(_ERRORS),
    tags=["audio_to_midi"],
)
async def audio_to_midi(request: Request, key: ApiKey = Depends(require_key)) -> Any:  # noqa: B008
    state = app_state(request)
    idempotency_key = idem.header(request)
    await _check_rate(state, key)
    spool = process_dir(state.settings.work_path) / "uploads"
    body = await read_body(request, max_upload_bytes=state.settings.max_upload_bytes, spool_dir=spool)
    try:
        return await _submit(request, state, key, body.fields, body.form, body.upload, idempotency_key)
    finally:
        if body.upload is not None:
            body.upload.path.unlink(missing_ok=True)


async def _submit(
    request: Request,
    state: AppState,
    key: ApiKey,
    fields: dict[str, Any],
    form: bool,
    upload: Upload | None,
    idempotency_key: str | None,
) -> Any:
    req = ConversionRequest.from_form(fields) if form else ConversionRequest.from_json(fields)
    digest = _digest(req, upload)
    if idempotency_key is not None:
        replay = await run_in_threadpool(idem.replay, state, key, idempotency_key, digest)
        if replay is not None:
            return replay
    if req.render_score is not None:
        missing = score_available(req.render_score)
        if missing:
            raise ApiError(400, "score_rendering_unavailable", f"render_score: {missing}")
    await _check_concurrency(state, key)
    if req.webhook_url:
        await _check_webhook(state, req.webhook_url)
    task_id = str(uuid.uuid4())
    audio_s: float | None = None  # known for uploads: routes the task and sets its time limit
    if upload is not None:
        audio_s = await run_in_threadpool(_sniff, state, upload)
        await _check_quota(state, key, audio_s)
        kind, name = "upload", safe_filename(upload.filename)
        ref = f"uploads/{task_id}/{name}"
        with dependency("store"):
            await run_in_threadpool(state.store.put_file, ref, upload.path)
    else:
        kind, ref, name = await _accept_location(state, req.location)
        await _check_quota(state, key, None)
    try:
        await run_in_threadpool(
            tasks.create_task,
            state.engine,
            key_id=key.id,
            request=req.stored(),
            input_kind=kind,
            input_ref=ref,
            input_name=name,
            webhook_url=req.webhook_url,
            task_id=task_id,
            input_duration_s=audio_s,
            idempotency_key=None if idempotency_key is None else (idempotency_key, digest, idem.ttl_s(state)),
        )
    except IntegrityError:
        if kind == "upload":
            await run_in_threadpool(state.store.delete, ref)
        if idempotency_key is not None:  # a concurrent request with this key won: answer its task
            replay = await run_in_threadpool(idem.replay, state, key, idempotency_key, digest)
            if replay is not None:
                return replay
        raise
    await run_in_threadpool(dispatch.submit, state.engine, state.dispatcher, task_id, audio_s)
    log.info("task %s queued for key %s (%s)", task_id, key.prefix, kind)
    return QueuedResponse(task_id=task_id, status="processing", message=QUEUED_MESSAGE)


def _digest(req: ConversionRequest, upload: Upload | None) -> str:
    """What makes two submissions "the same request" for Idempotency-Key: the validated fields
    (so key order and defaults do not matter) and the uploaded bytes."""
    canonical = {"fields": req.model_dump(mode="json"), "upload": upload.sha256 if upload else None}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


async def _check_rate(state: AppState, key: ApiKey) -> None:
    wait = await run_in_threadpool(state.limiter.allow, key.id)  # Redis or the database: not on the loop
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many requests for this API key", retry_after(wait))


async def _check_concurrency(state: AppState, key: ApiKey) -> None:
    limit = state.settings.max_concurrent_tasks_per_key
    if await run_in_threadpool(tasks.active_count, state.engine, key.id) >= limit:
        raise ApiError(
            429,
            "too_many_tasks",
            f"this API key already has {limit} tasks queued or running",
            retry_after(min(30.0, state.settings.poll_interval_s * 10)),
        )


async def _check_quota(state: AppState, key: ApiKey, audio_s: float | None) -> None:
    """The key's daily audio quota: seconds done today plus those queued, plus this input's."""
    limit = key.max_audio_seconds_per_day or state.settings.max_audio_seconds_per_day
    if not limit:
        return

    def used() -> float:
        return usage.used_today(state.engine, key.id) + usage.pending_s(state.engine, key.id)

    spent = await run_in_threadpool(used)
    if spent + (audio_s or 0.0) > limit or spent >= limit:
        raise ApiError(
            429,
            "quota_exceeded",
            f"this API key's daily quota is {limit:.0f} s of audio; {spent:.0f} s are used or queued today (UTC)"
            + (f" and this input lasts {audio_s:.0f} s" if audio_s else ""),
            retry_after(usage.seconds_to_next_day()),
        )


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


def _sniff(state: AppState, upload: Upload) -> float | None:
    """Refuse at submit time what is not decodable audio (422) or lasts too long (413, from the
    container's own duration); the duration if the container says."""
    if upload.size == 0:
        raise ApiError(422, "unsupported_audio", "the uploaded file is empty")
    limit = state.settings.max_audio_duration_s
    try:
        with upload.open() as fh, open_audio(fh, max_duration_s=limit) as reader:
            next(iter(reader.chunks()), None)
            return reader.info.duration_s
    except MidiscribeError as exc:
        raise to_api_error(exc) from None


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
