"""What the sync and the async client share: configuration, requests as data, answers as types,
the error-code table and the retry policy. No I/O here but reading files to upload."""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from midiscribe import __version__
from midiscribe.client._types import (
    DEFAULT_DOWNLOAD,
    FILE_KINDS,
    FileKind,
    ModelInfo,
    TaskErrorInfo,
    TaskInfo,
    TaskResult,
)
from midiscribe.core.results import Note, NoteOptions, Transcription
from midiscribe.errors import (
    AudioNotFoundError,
    AudioTooLongError,
    AuthenticationError,
    FileExpiredError,
    IdempotencyKeyReusedError,
    InputTooLargeError,
    InvalidRequestError,
    MidiscribeError,
    NotFoundError,
    OptionsError,
    OutputExistsError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    ServiceConnectionError,
    ServiceError,
    ServiceUnavailableError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotCompletedError,
    TaskNotFoundError,
    UnsupportedAudioError,
)
from midiscribe.music.key import Key

API = "/api/public/v1"
ENV_URL, ENV_KEY = "MIDISCRIBE_URL", "MIDISCRIBE_API_KEY"

# The fields POST /audio_to_midi takes (documented first, then our extras; `model` from issue 10).
# A name not here is refused before sending: the service ignores unknown fields, so a typo would
# otherwise pass silently. `extra={...}` sends fields this client does not know yet.
OPTION_NAMES = frozenset(
    {
        "sonify_midi",
        "save_note_events",
        "webhook_url",
        "sonify_format",
        "preset",
        "model",
        "onset_threshold",
        "frame_threshold",
        "minimum_note_length",
        "minimum_frequency",
        "maximum_frequency",
        "melodia_trick",
        "include_pitch_bends",
        "multiple_pitch_bends",
        "midi_program",
        "midi_tempo",
        "quantize",
        "quantize_strength",
        "quantize_ends",
        "save_musicxml",
        "render_score",
    }
)
# What POST /tasks/{id}/notes takes.
RETUNE_NAMES = frozenset(
    {
        "onset_threshold",
        "frame_threshold",
        "minimum_note_length",
        "minimum_frequency",
        "maximum_frequency",
        "melodia_trick",
        "include_pitch_bends",
        "midi_program",
        "midi_tempo",
        "multiple_pitch_bends",
        "preset",
        "quantize",
        "quantize_strength",
        "quantize_ends",
    }
)

# Every code of the README's error table (and every code a failed task reports) -> our class.
# The library's own class where there is one, so `except AudioTooLongError` catches a local and a
# remote one alike.
ERROR_CODES: dict[str, type[MidiscribeError]] = {
    "invalid_parameters": OptionsError,
    "invalid_options": OptionsError,
    "invalid_audio_path": InvalidRequestError,
    "forbidden_address": InvalidRequestError,
    "invalid_webhook_url": InvalidRequestError,
    "s3_not_configured": InvalidRequestError,
    "score_rendering_unavailable": InvalidRequestError,
    "model_not_installed": InvalidRequestError,  # issue 10: the server lacks the model's extra
    "invalid_request": InvalidRequestError,
    "unsupported_media_type": InvalidRequestError,
    "method_not_allowed": InvalidRequestError,
    "unauthorized": AuthenticationError,
    "invalid_link": PermissionDeniedError,
    "access_denied": PermissionDeniedError,
    "task_not_found": TaskNotFoundError,
    "input_not_found": AudioNotFoundError,
    "file_not_found": NotFoundError,
    "not_found": NotFoundError,
    "task_not_completed": TaskNotCompletedError,
    "file_expired": FileExpiredError,
    "input_too_large": InputTooLargeError,
    "audio_too_long": AudioTooLongError,
    "unsupported_audio": UnsupportedAudioError,
    "idempotency_key_reused": IdempotencyKeyReusedError,
    "rate_limited": RateLimitError,
    "too_many_tasks": RateLimitError,
    "quota_exceeded": QuotaExceededError,
    "internal_error": ServerError,
    "unavailable": ServiceUnavailableError,
    # only as a failed task's reason
    "upstream_error": TaskFailedError,
    "upstream_timeout": TaskFailedError,
    "time_limit_exceeded": TaskFailedError,
    "worker_died": TaskFailedError,
    "processing_error": TaskFailedError,
    "task_cancelled": TaskCancelledError,
}
# A code we do not know (another server, a newer one): the class its status says.
STATUS_ERRORS: dict[int, type[MidiscribeError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: TaskNotCompletedError,
    410: FileExpiredError,
    413: InputTooLargeError,
    415: InvalidRequestError,
    422: UnsupportedAudioError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def base_url_from(base_url: str | None) -> str:
    url = base_url or os.environ.get(ENV_URL, "")
    if not url:
        raise OptionsError(f"no server given: pass base_url or set {ENV_URL} (e.g. http://127.0.0.1:8000)")
    if not url.startswith(("http://", "https://")):
        raise OptionsError(f"the server URL must start with http:// or https://, got {url!r}")
    url = url.rstrip("/")
    return url.removesuffix(API)  # "https://host/api/public/v1" is the same server


def api_key_from(api_key: str | None) -> str | None:
    return api_key or os.environ.get(ENV_KEY) or None


def default_headers() -> dict[str, str]:
    return {"user-agent": f"midiscribe-client/{__version__}", "accept": "application/json"}


# ---------------------------------------------------------------------------------------- errors


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None if absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def error_for(response: httpx.Response, *, keyless: bool = False) -> MidiscribeError:
    """The exception for an error answer: ``{"success": false, "error": {"code", "message"}}``, or
    (from a proxy, or another server) anything else, by its status."""
    code, message, request_id = None, None, response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            request_id = error.get("request_id") or request_id
        elif isinstance(error, str):
            message = error
        message = message or body.get("message") or body.get("detail")
    if not isinstance(message, str) or not message:
        message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    if response.status_code == 401 and keyless:
        message += f" (pass api_key, or set {ENV_KEY})"
    return make_error(
        response.status_code,
        code if isinstance(code, str) else None,
        message,
        request_id=request_id,
        retry_after=retry_after_s(response),
    )


def make_error(
    status: int | None,
    code: str | None,
    message: str,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    task_id: str | None = None,
) -> MidiscribeError:
    cls = ERROR_CODES.get(code or "")
    if cls is None:
        cls = STATUS_ERRORS.get(status or 0)
    if cls is None:
        cls = ServerError if status is not None and status >= 500 else ServiceError
    exc = cls(message)
    exc.status, exc.code, exc.request_id, exc.retry_after_s, exc.task_id = (
        status,
        code,
        request_id,
        retry_after,
        task_id,
    )
    return exc


def task_error(info: TaskInfo) -> MidiscribeError:
    """What ``wait`` raises for a task that failed or was cancelled."""
    err = info.error or TaskErrorInfo(None, None, None)
    code = err.code or ("task_cancelled" if info.status == "cancelled" else None)
    message = err.message or f"task {info.task_id} {info.status}"
    exc = make_error(err.status, code, message, task_id=info.task_id)
    if type(exc) in (ServiceError, ServerError):  # the task's own failure, not this request's
        failed = TaskFailedError(message)
        failed.status, failed.code, failed.task_id = exc.status, exc.code, info.task_id
        return failed
    return exc


# ------------------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which answers to retry, how often and how long to wait.

    429 and 503 (and 502/504 from a proxy) are retried after their ``Retry-After`` (or an
    exponential backoff with jitter when there is none), but never after a wait longer than
    ``max_wait_s``: a daily quota's "retry at midnight" is raised at once. Connection failures are
    retried for idempotent calls; every call this client makes is one (submit sends an
    ``Idempotency-Key``)."""

    max_retries: int = 3
    max_wait_s: float = 60.0
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def backoff(self, attempt: int) -> float:
        wait: float = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return wait * random.uniform(0.5, 1.0)

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before another try, or None to stop."""
        if response.status_code not in (429, 502, 503, 504) or attempt >= self.max_retries:
            return None
        wait = retry_after_s(response)
        if wait is None:
            wait = self.backoff(attempt)
        return wait if wait <= self.max_wait_s else None

    def after_error(self, attempt: int, exc: httpx.TransportError, idempotent: bool) -> float | None:
        if attempt >= self.max_retries:
            return None
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        return self.backoff(attempt) if idempotent or never_sent else None


def connection_error(exc: httpx.TransportError, url: str) -> MidiscribeError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return ServiceConnectionError(f"connection to {url} {kind}: {exc or type(exc).__name__}")


# ----------------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Submission:
    """``POST /audio_to_midi`` as data: JSON for a location, a form with the file for an upload."""

    fields: dict[str, Any]
    location: str | None = None
    path: Path | None = None
    stream: IO[bytes] | None = None
    data: bytes | None = None
    filename: str = "audio"

    @property
    def upload(self) -> bool:
        return self.location is None

    def json_body(self) -> dict[str, Any]:
        return {"audio_path": self.location, **self.fields}

    def form_fields(self) -> dict[str, str]:
        return {k: _form_value(v) for k, v in self.fields.items()}

    def multipart_frame(self, boundary: str) -> tuple[bytes, bytes]:
        """The bytes before and after the file in a ``multipart/form-data`` body (RFC 7578), so a
        file can be streamed between them."""
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(k)}"\r\n\r\n{v}\r\n'
            for k, v in self.form_fields().items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio_file"; filename="{_quote(self.filename)}"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        return "".join(parts).encode(), f"\r\n--{boundary}--\r\n".encode()


def _quote(name: str) -> str:
    """A header parameter value as browsers (and httpx) write it: quote, CR and LF escaped."""
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


LOCATION_PREFIXES = ("http://", "https://", "s3://")


def submission(
    source: Any, options: Mapping[str, Any], extra: Mapping[str, Any] | None, filename: str | None
) -> Submission:
    fields = checked_options(options, OPTION_NAMES, "submit") | dict(extra or {})
    if isinstance(source, str) and source.lower().startswith(LOCATION_PREFIXES):
        return Submission(fields, location=source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise AudioNotFoundError(f"no such file: {path}")
        return Submission(fields, path=path, filename=filename or path.name)
    if isinstance(source, bytes | bytearray | memoryview):
        return Submission(fields, data=bytes(source), filename=filename or "audio")
    if hasattr(source, "read"):
        name = filename or os.path.basename(str(getattr(source, "name", "") or "")) or "audio"
        return Submission(fields, stream=source, filename=name)
    raise OptionsError(
        f"submit() takes a path, an http(s):// or s3:// location, bytes or a binary file, not {type(source).__name__}"
    )


def checked_options(options: Mapping[str, Any], known: frozenset[str], call: str) -> dict[str, Any]:
    unknown = sorted(set(options) - known)
    if unknown:
        raise OptionsError(
            f"{call}(): unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))} (extra={{...}} sends other fields as they are)"
        )
    return {k: v for k, v in options.items() if v is not None}


# ------------------------------------------------------------------------------------- answers


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _link(base_url: str, value: Any) -> str | None:
    return urljoin(base_url + "/", value) if isinstance(value, str) and value else None


def task_info(body: Mapping[str, Any], base_url: str) -> TaskInfo:
    result, error, inp = body.get("result"), body.get("error"), body.get("input") or {}
    return TaskInfo(
        task_id=str(body["task_id"]),
        status=body.get("status", "processing"),
        progress=int(body.get("progress") or 0),
        conversion_id=body.get("conversion_id"),
        created_at=_time(body.get("created_at")),
        started_at=_time(body.get("started_at")),
        finished_at=_time(body.get("finished_at")),
        expires_at=_time(body.get("expires_at")),
        files_deleted_at=_time(body.get("files_deleted_at")),
        input_kind=inp.get("kind"),
        input_name=inp.get("name"),
        options=dict(body.get("options") or {}),
        webhook_url=body.get("webhook_url") or "",
        result=_task_result(result, base_url) if isinstance(result, dict) else None,
        error=TaskErrorInfo(error.get("status"), error.get("code"), error.get("message"))
        if isinstance(error, dict)
        else None,
        raw=dict(body),
    )


def _task_result(r: Mapping[str, Any], base_url: str) -> TaskResult:
    return TaskResult(
        midi_url=_link(base_url, r.get("midi_file_path")) or "",
        sonify_url=_link(base_url, r.get("sonify_file_path")),
        notes_url=_link(base_url, r.get("notes_file_path")),
        model_outputs_url=_link(base_url, r.get("model_outputs_path")),
        musicxml_url=_link(base_url, r.get("musicxml_file_path")),
        mxl_url=_link(base_url, r.get("mxl_file_path")),
        score_urls=tuple(u for u in (_link(base_url, s) for s in r.get("score_file_paths") or ()) if u),
        n_notes=r.get("n_notes"),
        duration_s=r.get("duration_s"),
    )


def queued_info(body: Mapping[str, Any]) -> TaskInfo:
    """What the submit answer tells: the task id (the status comes from the next poll)."""
    status = body.get("status")
    return TaskInfo(
        task_id=str(body["task_id"]),
        status=status if status in ("queued", "processing") else "queued",
        progress=0,
        raw=dict(body),
    )


def model_infos(body: Any) -> list[ModelInfo]:
    items = body.get("models", []) if isinstance(body, dict) else body
    default = body.get("default") if isinstance(body, dict) else None
    out = []
    for item in items or ():
        if isinstance(item, str):
            item = {"name": item}
        out.append(
            ModelInfo(
                name=str(item["name"]),
                description=str(item.get("description") or ""),
                installed=item.get("installed") if isinstance(item.get("installed"), bool) else None,
                default=bool(item.get("default")) or item["name"] == default,
                licence=item.get("licence") or item.get("license"),
                extra=item.get("extra"),
                install_hint=item.get("install_hint"),
                raw=dict(item),
            )
        )
    return out


def transcription(body: Mapping[str, Any]) -> Transcription:
    """The re-tune answer as the library's own ``Transcription`` (notes, options, key)."""
    opts = body.get("options") or {}
    d = NoteOptions()
    options = NoteOptions(
        onset_threshold=opts.get("onset_threshold", d.onset_threshold),
        frame_threshold=opts.get("frame_threshold", d.frame_threshold),
        min_note_length_ms=opts.get("minimum_note_length", d.min_note_length_ms),
        min_frequency_hz=opts.get("minimum_frequency"),
        max_frequency_hz=opts.get("maximum_frequency"),
        melodia_trick=opts.get("melodia_trick", d.melodia_trick),
        pitch_bends=opts.get("include_pitch_bends", d.pitch_bends),
    )
    notes = tuple(
        Note(start_s=float(n[0]), end_s=float(n[1]), pitch=int(n[2]), amplitude=float(n[5]), bends_cents=tuple(n[4]))
        for n in body.get("notes") or ()
    )
    return Transcription(
        notes=notes,
        duration_s=float(body.get("duration_s") or 0.0),
        frame_period_s=float(body.get("frame_period_s") or 0.0),
        options=options,
        key=_key(body.get("key")),
    )


def _key(name: Any) -> Key | None:
    """``"Eb major"`` -> ``Key`` (the service names the key; its confidence is not sent)."""
    if not isinstance(name, str):
        return None
    try:
        return Key.from_name(name)
    except OptionsError:
        return None


# ----------------------------------------------------------------------------------- downloads


def completed_result(info: TaskInfo) -> TaskResult:
    """The result of a completed task whose files are kept; else the error that says why not."""
    if info.status != "completed":
        if info.finished:
            raise task_error(info)
        raise TaskNotCompletedError(f"task {info.task_id} is {info.status} ({info.progress}%): wait() for it first")
    if info.result is None:
        exc = FileExpiredError(f"the files of task {info.task_id} were deleted")
        exc.task_id = info.task_id
        raise exc
    return info.result


def download_plan(
    info: TaskInfo,
    directory: str | os.PathLike[str],
    *,
    name: str | None,
    include: tuple[FileKind, ...] | None,
    overwrite: bool,
) -> list[tuple[str, Path]]:
    """(URL, target) for each file to download; raises before any download when one cannot be."""
    result = completed_result(info)
    wanted = DEFAULT_DOWNLOAD if include is None else include
    bad = [k for k in wanted if k not in FILE_KINDS]
    if bad:
        raise OptionsError(f"unknown file kind {', '.join(bad)}; known: {', '.join(FILE_KINDS)}")
    stem = name or (Path(info.input_name).stem if info.input_name else "") or info.task_id
    out = Path(directory)
    plan = [(url, out / _file_name(kind, url, stem, info.task_id)) for kind, url in result.links() if kind in wanted]
    for _, path in plan:
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
    return plan


_SUFFIX = {"midi": "mid", "notes": "csv", "musicxml": "musicxml", "mxl": "mxl", "model_outputs": "npz", "sonify": "wav"}


def _file_name(kind: FileKind, url: str, stem: str, task_id: str) -> str:
    """``<stem>.mid``, ``<stem>.score-1.svg``: the service's name after the task id, as local
    ``midiscribe transcribe`` names its outputs."""
    base = PurePosixPath(unquote(urlsplit(url).path)).name
    if base.startswith(task_id + "."):
        return stem + base[len(task_id) :]
    suffix = PurePosixPath(base).suffix.lstrip(".") or _SUFFIX.get(kind, "bin")
    return f"{stem}.{suffix}"
