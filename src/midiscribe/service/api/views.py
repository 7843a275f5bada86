"""The documented shapes of the status, list and delete answers (our additions to the API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

TaskStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]


class TaskInput(BaseModel):
    kind: Literal["upload", "url", "s3"]
    name: str
    file_path: str | None = Field(default=None, description="uploads: a link to the original (until deleted)")
    audio_path: str | None = Field(default=None, description="URL and S3 inputs: as submitted")


class TaskResult(BaseModel):
    midi_file_path: str
    sonify_file_path: str = Field(description='"" when sonify_midi was false')
    notes_file_path: str = Field(description='"" when save_note_events was false')
    model_outputs_path: str
    musicxml_file_path: str | None = Field(default=None, description="when save_musicxml was true")
    mxl_file_path: str | None = Field(default=None, description="when save_musicxml was true")
    score_file_paths: list[str] | None = Field(default=None, description="when render_score was given: one per page")
    n_notes: int | None
    duration_s: float | None = Field(description="seconds of audio transcribed")
    tempo_bpm: float | None = Field(
        default=None, description="the typical tempo in beats per minute; null when no steady beat was heard"
    )
    tempo_reason: str | None = Field(default=None, description="why tempo_bpm is null")
    time_signature: str | None = Field(default=None, description='the meter the MIDI file is written in, e.g. "3/4"')
    beats: int | None = Field(default=None, description="beats in the MIDI file's tempo map (the beat grid)")
    key: str | None = Field(default=None, description='e.g. "E-flat major"; null when too few notes to tell')


class TaskError(BaseModel):
    status: int | None = Field(description="the HTTP status this failure corresponds to")
    code: str | None = Field(description="see the README's error table; task_cancelled when cancelled")
    message: str | None


class WebhookAttempt(BaseModel):
    attempt: int
    at: str | None = Field(description="when the attempt started (it is recorded before the request goes out)")
    status_code: int | None
    error: str | None = Field(
        description="null when delivered; `sending: no answer yet` while the request is out; "
        "`interrupted: ...` when the node sending it stopped first (it is then sent again, same webhook-id)"
    )
    duration_ms: int


class WebhookLog(BaseModel):
    webhook_id: str = Field(description="the same on every retry (Standard Webhooks)")
    state: Literal["pending", "delivered", "failed"]
    next_attempt_at: str | None
    attempts: list[WebhookAttempt]


class TaskView(BaseModel):
    success: Literal[True] = True
    task_id: str
    conversion_id: str
    status: TaskStatus
    progress: int = Field(ge=0, le=100)
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    expires_at: str | None = Field(description="when the result files will be deleted (RESULT_TTL_DAYS); null: kept")
    files_deleted_at: str | None = Field(
        description="when the files were deleted (expired, or DELETE); links answer 410"
    )
    input: TaskInput
    options: dict[str, Any]
    webhook_url: str
    result: TaskResult | None = Field(description="when completed and the files are still kept")
    error: TaskError | None = Field(description="when failed or cancelled")
    webhook: WebhookLog | None = Field(default=None, description="only in the single-task answer, with a webhook_url")


class TaskList(BaseModel):
    success: Literal[True] = True
    total: int
    limit: int
    offset: int
    tasks: list[TaskView]
