"""What the client answers: frozen dataclasses parsed from the service's JSON, units in the names."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

# Where the client finds its server and key when they are not given.
ENV_URL, ENV_KEY = "MIDISCRIBE_URL", "MIDISCRIBE_API_KEY"

TaskStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

# The kinds of result file, in the order ``Task.download`` writes them.
FileKind = Literal["midi", "sonify", "notes", "musicxml", "mxl", "score", "model_outputs"]
FILE_KINDS: tuple[FileKind, ...] = ("midi", "sonify", "notes", "musicxml", "mxl", "score", "model_outputs")
DEFAULT_DOWNLOAD: tuple[FileKind, ...] = ("midi", "sonify", "notes", "musicxml", "mxl", "score")


@dataclass(frozen=True, slots=True)
class TaskResult:
    """A completed task's result links (signed, they open without the API key) and figures."""

    midi_url: str
    sonify_url: str | None = None
    notes_url: str | None = None
    model_outputs_url: str | None = None
    musicxml_url: str | None = None
    mxl_url: str | None = None
    score_urls: tuple[str, ...] = ()
    n_notes: int | None = None
    duration_s: float | None = None
    """Seconds of audio transcribed."""

    def links(self) -> list[tuple[FileKind, str]]:
        """Every file the task produced, as (kind, URL), in download order."""
        single: dict[FileKind, str | None] = {
            "midi": self.midi_url,
            "sonify": self.sonify_url,
            "notes": self.notes_url,
            "musicxml": self.musicxml_url,
            "mxl": self.mxl_url,
        }
        out: list[tuple[FileKind, str]] = [(kind, url) for kind, url in single.items() if url]
        out += [("score", url) for url in self.score_urls]
        if self.model_outputs_url:
            out.append(("model_outputs", self.model_outputs_url))
        return out


@dataclass(frozen=True, slots=True)
class TaskErrorInfo:
    """Why a task failed or was cancelled: the HTTP status it corresponds to, the code, a message."""

    status: int | None
    code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task's status as ``GET /api/public/v1/tasks/{id}`` shows it."""

    task_id: str
    status: TaskStatus
    progress: int
    """0-100."""
    conversion_id: str | None = None
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    """When the result files will be deleted; None: kept."""
    files_deleted_at: dt.datetime | None = None
    input_kind: str | None = None
    """``upload``, ``url`` or ``s3``."""
    input_name: str | None = None
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    webhook_url: str = ""
    result: TaskResult | None = None
    error: TaskErrorInfo | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The JSON as answered, for fields this client does not know yet."""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model the service can transcribe with (``GET /api/public/v1/models``)."""

    name: str
    description: str = ""
    installed: bool | None = None
    """Whether the service can run it now (None: the service did not say)."""
    default: bool = False
    """The model a request that names none gets."""
    licence: str | None = None
    """The terms of its code and weights, in plain words."""
    extra: str | None = None
    """The pip extra that installs it on a server (None: always installed)."""
    install_hint: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
