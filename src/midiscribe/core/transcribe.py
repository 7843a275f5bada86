"""transcribe(): audio in, notes out, streaming windows through the model in batches."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO

import numpy as np
import numpy.typing as npt

from midiscribe.core import frames as fr
from midiscribe.core.audio import open_audio, resample
from midiscribe.core.model import Model, load_model
from midiscribe.core.notes import notes_from_outputs
from midiscribe.core.outputs import ModelOutputs, bend_bins_from_contour
from midiscribe.core.results import NoteOptions, Transcription
from midiscribe.errors import EmptyAudioError

Audio = str | os.PathLike[str] | bytes | IO[bytes] | npt.NDArray[np.floating]
Progress = Callable[[float, float | None], None]
"""Called with (seconds of audio done, total seconds if known)."""

BATCH_WINDOWS = 2  # default; a model may ask for its own (``batch_windows``: OpenVINO runs 2 per stream)


def batch_windows(model: Model) -> int:
    """Windows per ``model.run``: the model's own measured batch, else ``BATCH_WINDOWS``."""
    return int(getattr(model, "batch_windows", BATCH_WINDOWS))


class _Grid:
    """Growable (frames, 88) posteriorgrams, preallocated from the container's duration."""

    def __init__(self, expected_frames: int, keep_contour: bool) -> None:
        cap = max(expected_frames + fr.KEPT_FRAMES, fr.KEPT_FRAMES)
        self.n = 0
        self.note = np.zeros((cap, fr.N_PITCHES), dtype=np.float32)
        self.onset = np.zeros((cap, fr.N_PITCHES), dtype=np.float32)
        self.bends = np.zeros((cap, fr.N_PITCHES), dtype=np.int8)
        self.contour = np.zeros((cap, 3 * fr.N_PITCHES), dtype=np.float16) if keep_contour else None

    def _grow(self, need: int) -> None:
        cap = max(need, int(self.note.shape[0] * 1.25))
        for name in ("note", "onset", "bends", "contour"):
            old = getattr(self, name)
            if old is not None:
                new = np.zeros((cap, old.shape[1]), dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)

    def add(self, note: fr.FloatArray, onset: fr.FloatArray, contour: fr.FloatArray) -> None:
        k = note.shape[0]
        if self.n + k > self.note.shape[0]:
            self._grow(self.n + k)
        s = slice(self.n, self.n + k)
        self.note[s], self.onset[s] = note, onset
        self.bends[s] = bend_bins_from_contour(contour, note)
        if self.contour is not None:
            self.contour[s] = contour
        self.n += k

    def outputs(self, n_samples: int) -> ModelOutputs:
        """Views of the first frames, not copies: a copy would double the peak on long inputs."""
        n = min(fr.n_frames_for(n_samples), self.n)
        return ModelOutputs(
            note=self.note[:n],
            onset=self.onset[:n],
            bend_bins=self.bends[:n],
            contour=self.contour[:n] if self.contour is not None else None,
            duration_s=n_samples / fr.SAMPLE_RATE,
        )


def _batches(windows: Iterable[fr.FloatArray], size: int) -> Iterator[fr.FloatArray]:
    batch: list[fr.FloatArray] = []
    for window in windows:
        batch.append(window)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def infer(
    chunks: Iterable[fr.FloatArray],
    model: Model,
    *,
    expected_s: float | None = None,
    keep_contour: bool = False,
    progress: Progress | None = None,
) -> ModelOutputs:
    """Run the model over a stream of 22,050 Hz mono chunks; posteriorgrams on the exact grid."""
    counted = 0

    def counting() -> Iterator[fr.FloatArray]:
        nonlocal counted
        for chunk in chunks:
            counted += chunk.size
            yield chunk

    grid = _Grid(fr.n_frames_for(int((expected_s or 0) * fr.SAMPLE_RATE)), keep_contour)
    edge, kept = fr.EDGE_FRAMES, fr.KEPT_FRAMES
    for batch in _batches(fr.windows(counting()), batch_windows(model)):
        out = model.run(batch)
        for b in range(batch.shape[0]):
            grid.add(
                out.note[b, edge : edge + kept],
                out.onset[b, edge : edge + kept],
                out.contour[b, edge : edge + kept],
            )
        if progress is not None:
            progress(min(grid.n * fr.FRAME_PERIOD_S, counted / fr.SAMPLE_RATE), expected_s)
    if counted == 0:
        raise EmptyAudioError("the audio holds no samples")
    return grid.outputs(counted)


def transcribe(
    audio: Audio,
    options: NoteOptions | None = None,
    *,
    sample_rate: int | None = None,
    model: Model | None = None,
    keep_contour: bool = False,
    max_duration_s: float | None = None,
    progress: Progress | None = None,
) -> Transcription:
    """Transcribe a file path, bytes, binary file object or array of samples.

    An array needs ``sample_rate`` (it is mixed to mono and resampled). The result keeps
    the model outputs, from which :func:`retune` re-derives notes with other options
    without running the model again.
    """
    options = options or NoteOptions()
    model = model or load_model()
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise TypeError("an array of samples needs sample_rate")
        samples = resample(audio, sample_rate)
        expected: float | None = samples.size / fr.SAMPLE_RATE
        step = fr.SAMPLE_RATE * 10
        chunks: Iterable[fr.FloatArray] = (samples[i : i + step] for i in range(0, samples.size, step))
        outputs = infer(chunks, model, expected_s=expected, keep_contour=keep_contour, progress=progress)
    else:
        with open_audio(audio, max_duration_s=max_duration_s) as reader:
            expected = reader.info.duration_s
            outputs = infer(reader.chunks(), model, expected_s=expected, keep_contour=keep_contour, progress=progress)
    return retune(outputs, options)


def retune(outputs: ModelOutputs, options: NoteOptions | None = None) -> Transcription:
    """Notes from kept model outputs with (other) note options; no model run."""
    options = options or NoteOptions()
    return Transcription(
        notes=notes_from_outputs(outputs, options),
        duration_s=outputs.duration_s,
        frame_period_s=outputs.frame_period_s,
        options=options,
        outputs=outputs,
    )
