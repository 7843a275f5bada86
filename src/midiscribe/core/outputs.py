"""The model's raw outputs over a whole recording, kept so notes can be re-derived."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

import numpy as np
import numpy.typing as npt

from midiscribe.core.frames import (
    CONTOUR_BINS_PER_SEMITONE,
    FRAME_PERIOD_S,
    N_PITCHES,
    FloatArray,
)
from midiscribe.errors import OptionsError

BEND_RADIUS_BINS = 25  # basic-pitch's pitch-bend search range, in contour bins (1/3 semitone)
_GAUSSIAN = np.exp(-0.5 * ((np.arange(2 * BEND_RADIUS_BINS + 1) - BEND_RADIUS_BINS) / 5.0) ** 2).astype(np.float32)
# Contour bin of MIDI pitch p is 3 * (p - 21) + 1: basic-pitch uses 3 * (p - 21) and so
# reports every in-tune note bent by +1 bin (+33 cents; spotify/basic-pitch#87).
CONTOUR_CENTRE_OFFSET = 1


@dataclass(frozen=True, slots=True)
class ModelOutputs:
    """Posteriorgrams on the exact frame grid (frame j at j * 256 / 22050 s).

    ``note`` and ``onset`` are (frames, 88) in 0..1; ``bend_bins`` (frames, 88) int8 is, for
    each frame and pitch, the contour's peak near that pitch in 1/3-semitone bins;
    ``contour`` (frames, 264) is kept only when asked for. ``duration_s`` is the input's length.
    """

    note: FloatArray
    onset: FloatArray
    bend_bins: npt.NDArray[np.int8]
    contour: npt.NDArray[np.float16] | None = None
    duration_s: float = 0.0
    frame_period_s: float = FRAME_PERIOD_S

    @property
    def n_frames(self) -> int:
        return int(self.note.shape[0])

    def save(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        """Write a compressed ``.npz`` that :meth:`load` reads back."""
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "note": self.note,
            "onset": self.onset,
            "bend_bins": self.bend_bins,
            "frame_period_s": np.array(self.frame_period_s),
            "duration_s": np.array(self.duration_s),
        }
        if self.contour is not None:
            arrays["contour"] = self.contour
        np.savez_compressed(target, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, source: str | os.PathLike[str] | IO[bytes]) -> ModelOutputs:
        with np.load(source, allow_pickle=False) as data:
            try:
                note = data["note"].astype(np.float32)
                onset = data["onset"].astype(np.float32)
                bend_bins = data["bend_bins"].astype(np.int8)
                period = float(data["frame_period_s"])
                duration = float(data["duration_s"])
                contour = data.get("contour")
            except KeyError as exc:
                raise OptionsError(f"not a midiscribe model-outputs file (missing {exc})") from exc
        if note.shape != onset.shape or note.shape != bend_bins.shape or note.shape[1:] != (N_PITCHES,):
            raise OptionsError("model-outputs file has inconsistent shapes")
        return cls(
            note=note,
            onset=onset,
            bend_bins=bend_bins,
            contour=contour,
            duration_s=duration,
            frame_period_s=period,
        )


# The note posteriorgram rests at ~0.10 where nothing sounds. Bends are worked out only for
# cells above this floor: ~10% of cells on real music, so a tenth of the work, and at frame
# thresholds of 0.2-0.3 under 0.05% of the frames inside notes fall below it (they get 0).
BEND_FLOOR = 0.12


def bend_bins_from_contour(contour: FloatArray, note: FloatArray | None = None) -> npt.NDArray[np.int8]:
    """(frames, 264) contour -> (frames, 88) offset of the weighted contour peak from each pitch.

    With ``note`` (frames, 88), only cells whose activation reaches BEND_FLOOR are worked out.
    """
    n = contour.shape[0]
    pad = BEND_RADIUS_BINS
    padded = np.full((n, contour.shape[1] + 2 * pad + 1), -1.0, dtype=np.float32)
    padded[:, pad : pad + contour.shape[1]] = contour
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * pad + 1, axis=1)
    centres = view[:, CONTOUR_CENTRE_OFFSET::CONTOUR_BINS_PER_SEMITONE][:, :N_PITCHES]
    if note is None:
        bins: npt.NDArray[np.int8] = (np.argmax(centres * _GAUSSIAN, axis=2) - pad).astype(np.int8)
        return bins
    out = np.zeros((n, N_PITCHES), dtype=np.int8)
    t, p = np.nonzero(note >= BEND_FLOOR)
    if t.size:
        out[t, p] = (np.argmax(centres[t, p] * _GAUSSIAN, axis=1) - pad).astype(np.int8)
    return out
