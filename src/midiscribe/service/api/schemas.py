"""The documented request and response bodies, and our optional extras."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from midiscribe.core.presets import DEFAULT_PRESET, PRESETS, get_preset, preset_note_options
from midiscribe.core.results import NoteOptions
from midiscribe.formats.midi import MidiOptions
from midiscribe.formats.score import SCORE_FORMATS
from midiscribe.music.quantize import QUANTIZE_VALUES, QuantizeOptions
from midiscribe.service.api.strict import StrictRequest

SonifyFormat = Literal["wav", "flac", "opus", "mp3"]


class ConversionRequest(StrictRequest):
    """``POST /api/public/v1/audio_to_midi``: documented fields first, then our extras.

    Strict types (``StrictRequest``): JSON booleans and numbers, form fields as true/false/1/0."""

    audio_path: str | None = Field(default=None, description="s3:// or https:// location of the input audio")
    audio_url: str | None = Field(default=None, description="synonym of audio_path")
    sonify_midi: bool = Field(default=True, description="also render a .wav that plays the MIDI")
    save_note_events: bool = Field(default=True, description="also save the note events as .csv")
    webhook_url: str = Field(default="", description="called with the result when the task ends")
    sonify_format: SonifyFormat = Field(
        default="wav", description="format of the sonified file: wav (as documented), flac, opus or mp3"
    )

    preset: str = Field(
        default=DEFAULT_PRESET,
        description=f"note options, frequency range, MIDI program and bends for a kind of music: {', '.join(PRESETS)}",
        json_schema_extra={"enum": list(PRESETS)},
    )
    onset_threshold: float | None = Field(default=None, ge=0, le=1, description="default: the preset's (general: 0.6)")
    frame_threshold: float | None = Field(default=None, ge=0, le=1, description="default: the preset's (general: 0.4)")
    minimum_note_length: float | None = Field(
        default=None, ge=0, le=10_000, description="milliseconds; default: the preset's (general: 80)"
    )
    minimum_frequency: float | None = Field(default=None, gt=0, le=20_000, description="Hz; default: the preset's")
    maximum_frequency: float | None = Field(default=None, gt=0, le=20_000, description="Hz; default: the preset's")
    melodia_trick: bool | None = Field(default=None, description="default: the preset's")
    include_pitch_bends: bool | None = Field(default=None, description="default: the preset's")
    multiple_pitch_bends: bool = False
    midi_program: int | None = Field(
        default=None, ge=0, le=127, description="General MIDI program; default: the preset's (general: 0, piano)"
    )
    midi_tempo: float = Field(default=120.0, ge=10, le=400, description="beats per minute")
    quantize: str = Field(
        default="off",
        description=f"move notes toward a note-value grid on the beats: {', '.join(QUANTIZE_VALUES)}",
        json_schema_extra={"enum": list(QUANTIZE_VALUES)},
    )
    quantize_strength: float = Field(default=100.0, ge=0, le=100, description="percent of the way to the grid")
    quantize_ends: bool = Field(default=False, description="snap note ends to the grid too")
    save_musicxml: bool = Field(default=False, description="also write the score as .musicxml and .mxl")
    beat_columns: bool = Field(
        default=False, description="the notes CSV also gets start_beat,end_beat (bar.beat.thousandths on the MIDI grid)"
    )
    render_score: str | None = Field(
        default=None,
        description=f"also render the score's pages: {', '.join(SCORE_FORMATS)}",
        json_schema_extra={"enum": [*SCORE_FORMATS, None]},
    )

    @field_validator("minimum_frequency", "maximum_frequency", "audio_path", "audio_url", "render_score", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        get_preset(value)  # OptionsError (a ValueError) names the valid ones
        return value

    @field_validator("quantize")
    @classmethod
    def _known_grid(cls, value: str) -> str:
        if value not in QUANTIZE_VALUES:
            raise ValueError(f"must be one of {', '.join(QUANTIZE_VALUES)}")
        return value

    @field_validator("render_score")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in SCORE_FORMATS:
            raise ValueError(f"must be one of {', '.join(SCORE_FORMATS)} (or leave it out)")
        return value

    @property
    def location(self) -> str | None:
        return (self.audio_path or self.audio_url or "").strip() or None

    def note_options(self) -> NoteOptions:
        """The preset's note options, with the ones given in the request on top."""
        return preset_note_options(
            self.preset,
            onset_threshold=self.onset_threshold,
            frame_threshold=self.frame_threshold,
            min_note_length_ms=self.minimum_note_length,
            min_frequency_hz=self.minimum_frequency,
            max_frequency_hz=self.maximum_frequency,
            melodia_trick=self.melodia_trick,
            pitch_bends=self.include_pitch_bends,
        )

    def midi_options(self) -> MidiOptions:
        program = self.midi_program if self.midi_program is not None else get_preset(self.preset).program
        return MidiOptions(program=program, tempo_bpm=self.midi_tempo, multiple_pitch_bends=self.multiple_pitch_bends)

    def quantize_options(self) -> QuantizeOptions:
        return QuantizeOptions(grid=self.quantize, strength=self.quantize_strength, ends=self.quantize_ends)

    def stored(self) -> dict[str, Any]:
        """What a task keeps of its request (validated options, ready for the worker)."""
        from dataclasses import asdict

        return {
            "sonify_midi": self.sonify_midi,
            "sonify_format": self.sonify_format,
            "save_note_events": self.save_note_events,
            "preset": self.preset,
            "note_options": asdict(self.note_options()),
            "midi_options": asdict(self.midi_options()),
            "quantize": asdict(self.quantize_options()),
            "save_musicxml": self.save_musicxml,
            "render_score": self.render_score,
            "beat_columns": self.beat_columns,
        }


class QueuedResponse(BaseModel):
    success: bool = True
    task_id: str
    status: str = "processing"
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None


class ErrorResponse(BaseModel):
    success: bool = False
    error: ErrorDetail


class WebhookPayload(BaseModel):
    """What ``webhook_url`` receives when a task ends (signed per Standard Webhooks)."""

    success: bool
    conversion_type: str = "Audio to MIDI"
    task_id: str
    conversion_id: str
    midi_file_path: str
    sonify_file_path: str = Field(description='"" when sonify_midi was false')
    notes_file_path: str = Field(description='"" when save_note_events was false')
    musicxml_file_path: str | None = Field(default=None, description="only when save_musicxml was true")
    mxl_file_path: str | None = Field(default=None, description="only when save_musicxml was true")
    score_file_paths: list[str] | None = Field(default=None, description="only when render_score was given")
    message: str
    error: ErrorDetail | None = Field(default=None, description="only when success is false")


REQUEST_EXAMPLE = {
    "audio_path": "s3://your-bucket/input_audio.wav",
    "sonify_midi": True,
    "save_note_events": True,
    "webhook_url": "https://yourdomain.com/webhook",
}
URL_EXAMPLE = {
    "audio_path": "https://example.com/audio_file.wav",
    "sonify_midi": True,
    "save_note_events": True,
    "webhook_url": "https://your-webhook-url.com/callback",
}
WEBHOOK_EXAMPLE = {
    "success": True,
    "conversion_type": "Audio to MIDI",
    "task_id": "f5b563e5-e414-47ec-989b-255c74d90119",
    "conversion_id": "c7127f6b-e9a4-4d22-8804-d94a8521155a",
    "midi_file_path": "https://midi.example.com/files/results/f5b563e5-e414-47ec-989b-255c74d90119.mid?expires=...",
    "sonify_file_path": "https://midi.example.com/files/results/f5b563e5-e414-47ec-989b-255c74d90119.wav?expires=...",
    "notes_file_path": "",
    "message": "Audio to Midi Completed",
}
