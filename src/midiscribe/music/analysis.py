"""analyse(tr): the musical structure of a transcription, filled into it (the beat grid and the key)."""

from __future__ import annotations

from dataclasses import replace

from midiscribe.core.results import Transcription
from midiscribe.music.beats import track_beats
from midiscribe.music.key import estimate_key

__all__ = ["analyse"]


def analyse(tr: Transcription, *, fallback_bpm: float = 120.0) -> Transcription:
    """``tr`` with ``key`` set from its notes (None when there are too few to tell) and ``grid``
    tracked from its model outputs (``music.beats``).

    Without model outputs a grid already set is kept (None otherwise). When no steady beat is
    heard the grid is a constant ``fallback_bpm`` 4/4 grid whose ``tempo_bpm`` is None and whose
    ``reason`` says why.
    """
    grid = tr.grid
    if grid is None and tr.outputs is not None:
        grid = track_beats(tr.outputs, fallback_bpm=fallback_bpm)
    return replace(tr, key=estimate_key(tr.notes), grid=grid)
