"""A transcription's notes (and pedal events) as JSON, kept with a task whose model has no outputs.

The general model keeps its posteriorgrams (``.npz``), from which the re-tune endpoint re-derives
notes. Other models (``mono``, ``piano``) keep their notes instead, so the task's notes can be
shown, filtered and re-quantized later without running the model again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from midiscribe.core.results import Note, NoteOptions, Pedal, Transcription
from midiscribe.errors import MidiscribeError

__all__ = ["kept_notes_bytes", "transcription_from_kept"]

VERSION = 1


def kept_notes_bytes(tr: Transcription) -> bytes:
    """The notes, pedal events, duration, frame period and note options as compact JSON."""
    body: dict[str, Any] = {
        "version": VERSION,
        "duration_s": tr.duration_s,
        "frame_period_s": tr.frame_period_s,
        "options": asdict(tr.options),
        "notes": [[n.start_s, n.end_s, n.pitch, n.amplitude, list(n.bends_cents), n.confidence] for n in tr.notes],
        "pedals": [[p.start_s, p.end_s] for p in tr.pedals],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def transcription_from_kept(data: bytes) -> Transcription:
    """The transcription :func:`kept_notes_bytes` wrote (no model outputs, no grid or key)."""
    try:
        body = json.loads(data)
        if body.get("version") != VERSION:
            raise ValueError(f"version {body.get('version')!r}")
        notes = tuple(
            Note(float(s), float(e), int(p), float(a), tuple(int(c) for c in bends), None if c is None else float(c))
            for s, e, p, a, bends, c in body["notes"]
        )
        pedals = tuple(Pedal(float(s), float(e)) for s, e in body.get("pedals", []))
        return Transcription(
            notes=notes,
            duration_s=float(body["duration_s"]),
            frame_period_s=float(body["frame_period_s"]),
            options=NoteOptions(**body["options"]),
            pedals=pedals,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise MidiscribeError(f"not a kept-notes file: {exc}") from exc
