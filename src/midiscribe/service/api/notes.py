"""Re-derive a finished task's notes with other options, from its kept model outputs (our addition).

``POST /api/public/v1/tasks/{task_id}/notes`` runs no model: it loads the task's posteriorgrams
(cached per API process) and runs note creation only, well under a second for minutes of audio.
It answers the notes as JSON, or (``format=midi|csv``) as a file.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import Field, field_validator
from starlette.concurrency import run_in_threadpool

from midiscribe.core.bends import written_bends
from midiscribe.core.outputs import ModelOutputs
from midiscribe.core.presets import PRESETS, get_preset
from midiscribe.core.results import NoteOptions, Transcription
from midiscribe.core.transcribe import retune
from midiscribe.formats.midi import TICKS_PER_BEAT, MidiOptions, write_midi
from midiscribe.formats.notes_csv import write_notes_csv
from midiscribe.formats.tempo_map import TempoMap
from midiscribe.music.analysis import analyse
from midiscribe.music.grid import BeatGrid
from midiscribe.music.quantize import QUANTIZE_VALUES, QuantizeOptions, quantize
from midiscribe.service.api.bodies import read_body
from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.openapi import error_responses
from midiscribe.service.api.state import AppState, app_state, require_key
from midiscribe.service.api.strict import StrictRequest
from midiscribe.service.api.tasks import owned_task
from midiscribe.service.records.keys import ApiKey
from midiscribe.service.workdir import scratch

router = APIRouter(tags=["tasks"])
_CACHE: OrderedDict[str, ModelOutputs] = OrderedDict()
_CACHE_SIZE = 8
_LOCK = threading.Lock()


class RetuneRequest(StrictRequest):
    """Note options; any left out keep the task's own (strict types, as every request)."""

    onset_threshold: float | None = Field(default=None, ge=0, le=1)
    frame_threshold: float | None = Field(default=None, ge=0, le=1)
    minimum_note_length: float | None = Field(default=None, ge=0, le=10_000, description="milliseconds")
    minimum_frequency: float | None = Field(default=None, gt=0, le=20_000)
    maximum_frequency: float | None = Field(default=None, gt=0, le=20_000)
    melodia_trick: bool | None = None
    include_pitch_bends: bool | None = None
    midi_program: int | None = Field(default=None, ge=0, le=127)
    midi_tempo: float | None = Field(default=None, ge=10, le=400)
    multiple_pitch_bends: bool | None = None
    preset: str | None = Field(
        default=None,
        description="start from this preset's options instead of the task's own",
        json_schema_extra={"enum": list(PRESETS)},
    )
    quantize: str | None = Field(default=None, json_schema_extra={"enum": list(QUANTIZE_VALUES)})
    quantize_strength: float | None = Field(default=None, ge=0, le=100)
    quantize_ends: bool | None = None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None:
            get_preset(value)
        return value

    @field_validator("quantize")
    @classmethod
    def _known_grid(cls, value: str | None) -> str | None:
        if value is not None and value not in QUANTIZE_VALUES:
            raise ValueError(f"must be one of {', '.join(QUANTIZE_VALUES)}")
        return value


def _outputs(state: AppState, task_id: str, key: str) -> ModelOutputs:
    with _LOCK:
        cached = _CACHE.get(task_id)
        if cached is not None:
            _CACHE.move_to_end(task_id)
            return cached
    with scratch(state.settings.work_path, "retune-") as tmp:
        path = Path(tmp) / "outputs.npz"
        state.store.fetch_to(key, path)
        outputs = ModelOutputs.load(path)
    with _LOCK:
        _CACHE[task_id] = outputs
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return outputs


def _options(row: Any, body: RetuneRequest) -> tuple[NoteOptions, MidiOptions, QuantizeOptions]:
    stored_notes, stored_midi = row.request["note_options"], row.request["midi_options"]
    if body.preset is not None:  # the preset replaces the task's options; explicit fields still win
        preset = get_preset(body.preset)
        stored_notes = asdict(preset.note_options())
        stored_midi = stored_midi | {"program": preset.program}
    overrides = {
        "onset_threshold": body.onset_threshold,
        "frame_threshold": body.frame_threshold,
        "min_note_length_ms": body.minimum_note_length,
        "min_frequency_hz": body.minimum_frequency,
        "max_frequency_hz": body.maximum_frequency,
        "melodia_trick": body.melodia_trick,
        "pitch_bends": body.include_pitch_bends,
    }
    notes = NoteOptions(**(stored_notes | {k: v for k, v in overrides.items() if v is not None}))
    midi_overrides = {
        "program": body.midi_program,
        "tempo_bpm": body.midi_tempo,
        "multiple_pitch_bends": body.multiple_pitch_bends,
    }
    midi = MidiOptions(**(stored_midi | {k: v for k, v in midi_overrides.items() if v is not None}))
    q_overrides = {"grid": body.quantize, "strength": body.quantize_strength, "ends": body.quantize_ends}
    stored_q = row.request.get("quantize", {})
    quant = QuantizeOptions(**(stored_q | {k: v for k, v in q_overrides.items() if v is not None}))
    return notes, midi, quant


def _grid_json(grid: BeatGrid) -> dict[str, Any]:
    """The grid, and the bar number of its first downbeat as the MIDI file counts bars (bar 1 at 0 s)."""
    first_bar = TempoMap.from_grid(grid, TICKS_PER_BEAT).bar_beat(grid.beats_s[grid.first_downbeat])[0]
    return grid.as_dict() | {"first_bar": first_bar}


def _as_json(tr: Transcription, options: NoteOptions, quant: QuantizeOptions) -> dict[str, Any]:
    return {
        "success": True,
        "n_notes": len(tr.notes),
        "key": tr.key.name if tr.key is not None else None,
        "grid": _grid_json(tr.grid) if tr.grid is not None else None,
        "quantize": {"quantize": quant.grid, "quantize_strength": quant.strength, "quantize_ends": quant.ends},
        "duration_s": tr.duration_s,
        "frame_period_s": tr.frame_period_s,
        "options": {
            "onset_threshold": options.onset_threshold,
            "frame_threshold": options.frame_threshold,
            "minimum_note_length": options.min_note_length_ms,
            "minimum_frequency": options.min_frequency_hz,
            "maximum_frequency": options.max_frequency_hz,
            "melodia_trick": options.melodia_trick,
            "include_pitch_bends": options.pitch_bends,
        },
        # start_s, end_s, pitch, velocity, bends in cents (one per frame, [] if none), amplitude
        "notes": [
            [round(n.start_s, 6), round(n.end_s, 6), n.pitch, n.velocity, list(n.bends_cents), round(n.amplitude, 4)]
            for n in tr.notes
        ],
    }


_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": RetuneRequest.model_json_schema()}},
    }
}


@router.post(
    "/api/public/v1/tasks/{task_id}/notes",
    summary="Re-derive a completed task's notes with other thresholds (no model run)",
    description="Options left out keep the task's own. `format=json` (default) answers the notes; "
    "`format=midi` or `format=csv` answers the re-tuned file.",
    openapi_extra=_BODY,
    responses={
        200: {
            "description": "The notes (JSON), or the re-tuned MIDI or CSV file",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "audio/midi": {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **error_responses(
            {
                400: "Mistyped or out-of-range options, or a malformed body",
                404: "No such task for this API key",
                409: "The task has no model outputs (not completed, or its files were deleted)",
                413: "The body is over 1 MiB",
                415: "The body is not JSON",
            }
        ),
    },
)
async def renotes(
    task_id: str,
    request: Request,
    key: ApiKey = Depends(require_key),  # noqa: B008
    format: Literal["json", "midi", "csv"] = Query("json"),
) -> Any:
    state = app_state(request)
    raw = await read_body(request, max_upload_bytes=0, spool_dir=None, empty_ok=True)
    body = RetuneRequest.from_form(raw.fields) if raw.form else RetuneRequest.from_json(raw.fields)

    def work() -> Any:
        row = owned_task(state, key, task_id)
        outputs_key = (row.result or {}).get("outputs")
        if row.status != "completed" or not outputs_key or row.files_deleted_at is not None:
            raise ApiError(409, "task_not_completed", f"task {task_id} has no model outputs yet (status {row.status})")
        notes, midi, quant = _options(row, body)
        tr = retune(_outputs(state, task_id, outputs_key), notes)
        stored = ((row.result or {}).get("music") or {}).get("grid")
        # the task's own grid, as in its MIDI file (a new midi_tempo only changes a grid without a beat)
        if stored and (stored.get("tempo_bpm") is not None or body.midi_tempo is None):
            tr = replace(tr, grid=BeatGrid.from_dict(stored))
        tr = analyse(tr, fallback_bpm=midi.tempo_bpm)
        tr = quantize(tr, quant, fallback_bpm=midi.tempo_bpm)
        tr = written_bends(tr, multiple_pitch_bends=midi.multiple_pitch_bends)  # as the MIDI file carries them
        if format == "json":
            return _as_json(tr, notes, quant)
        buf: Any = io.BytesIO() if format == "midi" else io.StringIO()
        (
            write_midi(tr, buf, midi)
            if format == "midi"
            else write_notes_csv(tr, buf, beat_columns=bool(row.request.get("beat_columns")))
        )
        data = buf.getvalue()
        media = "audio/midi" if format == "midi" else "text/csv"
        name = f"{task_id}-retuned.{'mid' if format == 'midi' else 'csv'}"
        return Response(data, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'})

    return await run_in_threadpool(work)
