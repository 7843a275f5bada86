"""What the sync and the async client share: configuration, requests as data, answers as types,
download names (errors and retries: ``_errors.py``). No I/O here but checking that a path exists."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from midiscribe import __version__
from midiscribe.client._errors import task_error
from midiscribe.client._types import (
    DEFAULT_DOWNLOAD,
    ENV_KEY,
    ENV_URL,
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
    FileExpiredError,
    OptionsError,
    OutputExistsError,
    TaskNotCompletedError,
)
from midiscribe.music.key import Key

API = "/api/public/v1"

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


def task_path(task_id: str, rest: str = "") -> str:
    """``/api/public/v1/tasks/<id><rest>``, the id escaped (an id is never a path)."""
    return f"{API}/tasks/{quote(str(task_id), safe='')}{rest}"


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
