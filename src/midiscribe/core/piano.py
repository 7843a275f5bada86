"""The ``piano`` model: Transkun 2.0 over a stream of segments, notes with velocities and pedal.

Decoding streams (``core.audio`` at 44.1 kHz), and the network sees one segment at a time, so
memory does not grow with the length of the recording. Segments overlap: where one ends, the next
re-decodes each key from the last note it closed (Transkun's ``forcedStartPos``), and a note cut by
a segment's end is joined with its continuation (Transkun's ``mergeIncompleteEvent``). Unlike
Transkun's ``transcribe`` we pad no silence in front of the first segment and only pad the last
one to the segment length, so a 2 s clip costs one 16 s segment, not three.

Notes are as played (key down to key up); the sustain pedal is reported apart as ``pedals``, and
``NoteOptions.pedal_extends_notes`` lengthens notes by it for notation. Of the other note options
only the frequency range applies: the semi-CRF decides notes without thresholds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal, get_args

import numpy as np

from midiscribe.core import piano_net as pn
from midiscribe.core.audio import open_audio, resample
from midiscribe.core.frames import FloatArray
from midiscribe.core.pedal import sustained_notes
from midiscribe.core.results import Note, NoteOptions, Pedal, Transcription
from midiscribe.core.transcribe import Audio, Progress
from midiscribe.errors import EmptyAudioError, OptionsError

log = logging.getLogger("midiscribe")

__all__ = ["PianoModel"]

SEGMENT_S = 16.0
"""Transkun's training segment length. Shorter ones lose notes: a 4 s piano clip alone in a 4.5 s
segment gave 4 of its 8 notes, padded with silence to 16 s all 8; so the last (or only) segment is
padded to this length (the scores grow with its square, so longer ones cost more per second)."""
HOP_S = 12.0
"""Segment start to segment start. Transkun uses 8 s (every second decoded twice); see README."""
SUSTAIN, SOFT = -64, -67
Precision = Literal["float32", "bfloat16", "int8"]
"""float32 is the default: int8 linear layers add notes that are not there (README, "Piano model")."""


class PianoModel:
    """Solo piano transcription with sustain pedal and velocities (the ``piano`` extra)."""

    name = "piano"

    def __init__(
        self,
        *,
        precision: Precision = "float32",
        threads: int | None = None,
        segment_s: float = SEGMENT_S,
        hop_s: float = HOP_S,
    ) -> None:
        if not 1.0 <= hop_s <= segment_s <= 60.0:
            raise OptionsError(f"need 1 <= hop_s <= segment_s <= 60, got {hop_s}, {segment_s}")
        if precision not in get_args(Precision):
            raise OptionsError(f"precision must be one of {get_args(Precision)}, got {precision!r}")
        self.precision = precision
        self.threads = threads
        self.segment_samples = round(segment_s * pn.SAMPLE_RATE)
        # Segments must start on the network's frame grid so that frame k of one is frame k - hop of the next.
        self.hop_samples = round(hop_s * pn.SAMPLE_RATE / pn.HOP_SAMPLES) * pn.HOP_SAMPLES
        self._net: Any = None
        self._lock = threading.Lock()

    def network(self) -> Any:
        """The network, loaded on first use (about 1 s; 56 MB of weights)."""
        with self._lock:
            if self._net is None:
                import torch

                from midiscribe.core.model import default_threads

                torch.set_num_threads(self.threads or default_threads())
                t0 = time.perf_counter()
                self._net = pn.load_network(quantize=self.precision == "int8")
                log.debug("loaded Transkun 2.0 (%s) in %.2f s", self.precision, time.perf_counter() - t0)
            return self._net

    def transcribe(
        self,
        audio: Audio,
        options: NoteOptions | None = None,
        *,
        sample_rate: int | None = None,
        max_duration_s: float | None = None,
        progress: Progress | None = None,
    ) -> Transcription:
        """Notes and sustain pedal of a file path, bytes, binary file object or array of samples."""
        options = options or NoteOptions()
        net = self.network()
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise TypeError("an array of samples needs sample_rate")
            samples = resample(audio, sample_rate, pn.SAMPLE_RATE)
            step = pn.SAMPLE_RATE * 10
            chunks: Iterable[FloatArray] = (samples[i : i + step] for i in range(0, samples.size, step))
            events, n = self._run(net, chunks, samples.size / pn.SAMPLE_RATE, progress)
        else:
            with open_audio(audio, max_duration_s=max_duration_s, sample_rate=pn.SAMPLE_RATE) as reader:
                events, n = self._run(net, reader.chunks(), reader.info.duration_s, progress)
        return _transcription(events, n / pn.SAMPLE_RATE, options)

    def _run(
        self, net: Any, chunks: Iterable[FloatArray], expected_s: float | None, progress: Progress | None
    ) -> tuple[list[pn.Event], int]:
        merger = _Merger(self.hop_samples // pn.HOP_SAMPLES)
        n = 0
        for offset, segment, n in self._segments(chunks):
            events, last_closed = pn.decode_segment(
                net, segment, merger.forced_start, bf16=self.precision == "bfloat16"
            )
            merger.add(events, offset / pn.SAMPLE_RATE, last_closed)
            if progress is not None:
                progress(min(n, offset + segment.size) / pn.SAMPLE_RATE, expected_s)
        if n == 0:
            raise EmptyAudioError("the audio holds no samples")
        return merger.finish(), n

    def _segments(self, chunks: Iterable[FloatArray]) -> Iterator[tuple[int, FloatArray, int]]:
        """(first sample, samples, samples read so far): full segments, then what is left, padded."""
        size, hop = self.segment_samples, self.hop_samples
        buffer = np.zeros(0, dtype=np.float32)
        start = read = 0
        covered = 0  # samples of input that some segment has seen
        for chunk in chunks:
            read += chunk.size
            buffer = np.concatenate((buffer, chunk.astype(np.float32, copy=False)))
            while buffer.size >= size:
                yield start, buffer[:size], read
                covered = start + size
                buffer, start = buffer[hop:], start + hop
        if read > covered:
            yield start, np.concatenate((buffer, np.zeros(size - buffer.size, dtype=np.float32))), read


class _Merger:
    """Joins each segment's events into one list per track, as Transkun's ``transcribe`` loop."""

    def __init__(self, hop_frames: int) -> None:
        self.hop_frames = hop_frames
        self.forced_start = [0] * len(pn.TRACKS)
        self.by_track: dict[int, list[pn.Event]] = {}

    def add(self, events: list[pn.Event], offset_s: float, last_closed: list[int]) -> None:
        self.forced_start = [max(k - self.hop_frames, 0) for k in last_closed]
        for e in events:
            e.start_s = max(e.start_s + offset_s, 0.0)
            e.end_s = max(e.end_s + offset_s, e.start_s)
        for e in sorted(events, key=lambda e: (e.start_s, e.end_s, e.track)):
            track = self.by_track.setdefault(e.track, [])
            if track and e.start_s < track[-1].end_s:
                if e.has_onset:
                    track[-1] = e
                else:  # the continuation of a note cut by the previous segment's end
                    track[-1].has_offset = e.has_offset
                    track[-1].end_s = max(e.end_s, track[-1].end_s)
            elif e.has_onset:
                track.append(e)

    def finish(self) -> list[pn.Event]:
        out: list[pn.Event] = []
        for track in self.by_track.values():
            if track:
                track[-1].has_offset = True
            out.extend(e for e in track if e.has_offset)
        return out


def _transcription(events: list[pn.Event], duration_s: float, options: NoteOptions) -> Transcription:
    lo, hi = _pitch_range(options)
    notes: list[Note] = []
    pedals: list[Pedal] = []
    for e in sorted(events, key=lambda e: (e.start_s, e.end_s, e.track)):
        end = min(e.end_s, duration_s)
        if end <= e.start_s:
            continue
        if e.track == SUSTAIN:
            pedals.append(Pedal(start_s=e.start_s, end_s=end))
        elif lo <= e.track <= hi:
            notes.append(Note(start_s=e.start_s, end_s=end, pitch=e.track, amplitude=max(1, e.velocity) / 127))
    notes = _one_at_a_time(notes)
    kept: tuple[Note, ...] = tuple(sorted(notes, key=lambda n: (n.start_s, n.pitch)))
    if options.pedal_extends_notes:
        kept = sustained_notes(kept, pedals)
    return Transcription(
        notes=kept,
        duration_s=duration_s,
        frame_period_s=pn.HOP_SAMPLES / pn.SAMPLE_RATE,
        options=options,
        pedals=tuple(pedals),
    )


def _one_at_a_time(notes: list[Note]) -> list[Note]:
    """A key sounds once at a time: an earlier note ends where the next of its pitch starts."""
    last: dict[int, int] = {}
    out: list[Note] = []
    for note in notes:
        j = last.get(note.pitch)
        if j is not None and out[j].end_s > note.start_s:
            prev = out[j]
            out[j] = Note(prev.start_s, note.start_s, prev.pitch, prev.amplitude)
        last[note.pitch] = len(out)
        out.append(note)
    return [n for n in out if n.end_s > n.start_s]


def _pitch_range(options: NoteOptions) -> tuple[int, int]:
    """MIDI pitches within the options' frequency range (the whole keyboard without one)."""
    lo, hi = 21, 108
    if options.min_frequency_hz is not None:
        lo = max(lo, int(np.ceil(69 + 12 * np.log2(options.min_frequency_hz / 440.0) - 1e-9)))
    if options.max_frequency_hz is not None:
        hi = min(hi, int(np.floor(69 + 12 * np.log2(options.max_frequency_hz / 440.0) + 1e-9)))
    return lo, hi
