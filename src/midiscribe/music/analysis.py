"""analyse(tr): the musical structure of a transcription, filled into it (key; the beat grid joins here)."""

from __future__ import annotations

from dataclasses import replace

from midiscribe.core.results import Transcription
from midiscribe.music.key import estimate_key

__all__ = ["analyse"]


def analyse(tr: Transcription) -> Transcription:
    """``tr`` with ``key`` set from its notes (None when there are too few to tell)."""
    return replace(tr, key=estimate_key(tr.notes))
