"""The documented request and response bodies, and our optional extras."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from midiscribe.core.results import NoteOptions
from midiscribe.formats.midi import MidiOptions
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

    onset_threshold: float = Field(default=0.5, ge=0, le=1)
    frame_threshold: float = Field(default=0.3, ge=0, le=1)
    minimum_note_length: float = Field(default=127.70, ge=0, le=10_000, description="milliseconds")
    minimum_frequency: float | None = Field(default=None, gt=0, le=20_000, description="Hz")
    maximum_frequency: float | None = Field(default=None, gt=0, le=20_000, description="Hz")
    melodia_trick: bool = True
    include_pitch_bends: bool = True
    multiple_pitch_bends: bool = False
    midi_program: int = Field(default=0, ge=0, le=127, description="General MIDI program (0: Acoustic Grand Piano)")
    midi_tempo: float = Field(default=120.0, ge=10, le=400, description="beats per minute")

    @field_validator("minimum_frequency", "maximum_frequency", "audio_path", "audio_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def location(self) -> str | None:
        return (self.audio_path or self.audio_url or "").strip() or None

    def note_options(self) -> NoteOptions:
        return NoteOptions(
            onset_threshold=self.onset_threshold,
            frame_threshold=self.frame_threshold,
            min_note_length_ms=self.minimum_note_length,
            min_frequency_hz=self.minimum_frequency,
            max_frequency_hz=self.maximum_frequency,
            melodia_trick=self.melodia_trick,
            pitch_bends=self.include_pitch_bends,
        )

    def midi_options(self) -> MidiOptions:
        return MidiOptions(
            program=self.midi_program,
            tempo_bpm=self.midi_tempo,
            multiple_pitch_bends=self.multiple_pitch_bends,
        )

    def stored(self) -> dict[str, Any]:
        """What a task keeps of its request (validated options, ready for the worker)."""
        from dataclasses import asdict

        return {
            "sonify_midi": self.sonify_midi,
            "sonify_format": self.sonify_format,
            "save_note_events": self.save_note_events,
            "note_options": asdict(self.note_options()),
            "midi_options": asdict(self.midi_options()),
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
