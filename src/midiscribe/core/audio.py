"""Decode any audio or video container with PyAV, mix to mono and resample to 22,050 Hz with soxr.

Decoding is a stream: :func:`open_audio` yields chunks of samples, so memory does not grow
with the length of the recording. This module is the only one that touches codecs.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from midiscribe.core.frames import SAMPLE_RATE, FloatArray
from midiscribe.errors import (
    AudioNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    UnsupportedAudioError,
)

AudioSource = str | os.PathLike[str] | bytes | IO[bytes]
_MAX_BAD_PACKETS = 50


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What the container says about its audio stream (duration may be unknown)."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None


def _open_container(source: AudioSource) -> Any:
    import av  # PyAV: FFmpeg in the wheel

    target: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    if isinstance(target, str | os.PathLike):
        path = os.fspath(target)
        if not os.path.exists(path):
            raise AudioNotFoundError(f"{path}: no such file")
        if os.path.isdir(path):
            raise UnsupportedAudioError(f"{path}: is a directory, not an audio file")
        if os.path.getsize(path) == 0:
            raise EmptyAudioError(f"{path}: the file is empty")
    try:
        return av.open(target, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise UnsupportedAudioError(f"not a readable audio or video file ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[-1].strip() or type(exc).__name__


class AudioReader:
    """An open input: ``info`` and a one-pass stream of mono float32 chunks at ``sample_rate``.

    22,050 Hz (basic-pitch's rate) unless asked otherwise; the piano model reads 44,100 Hz.
    """

    def __init__(
        self, source: AudioSource, *, max_duration_s: float | None = None, sample_rate: int = SAMPLE_RATE
    ) -> None:
        self.sample_rate = sample_rate
        self._container = _open_container(source)
        streams = self._container.streams.audio
        if not streams:
            self.close()
            raise UnsupportedAudioError("the file has no audio stream")
        self._stream = streams[0]
        self._max_duration_s = max_duration_s
        ctx = self._stream.codec_context
        duration = None
        if self._stream.duration is not None and self._stream.time_base is not None:
            duration = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration is not None:
            duration = self._container.duration / 1_000_000
        self.info = AudioInfo(
            container=str(self._container.format.name),
            codec=str(ctx.name),
            sample_rate=int(ctx.sample_rate or 0),
            channels=int(ctx.channels or 0),
            duration_s=duration,
        )
        if max_duration_s is not None and duration is not None and duration > max_duration_s + 1.0:
            self.close()
            raise AudioTooLongError(f"the audio lasts {duration:.0f} s, over the limit of {max_duration_s:.0f} s")

    def chunks(self) -> Iterator[FloatArray]:
        """Mono float32 chunks at ``sample_rate``. Raises EmptyAudioError if nothing decodes."""
        import av
        import soxr

        resampler: Any = None
        in_rate = 0
        produced = 0
        bad = 0
        converter = av.AudioResampler(format="fltp")
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                bad += 1
                if bad > _MAX_BAD_PACKETS or (produced == 0 and bad > 5):
                    raise UnsupportedAudioError(f"the audio stream cannot be decoded ({_reason(exc)})") from exc
                continue
            for frame in frames:
                for converted in converter.resample(frame):
                    mono = _to_mono(converted.to_ndarray())
                    rate = int(converted.sample_rate)
                    if resampler is None:
                        in_rate = rate
                        resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32", quality="HQ")
                    elif rate != in_rate:
                        raise UnsupportedAudioError("the sample rate changes inside the stream")
                    out = resampler.resample_chunk(mono)
                    produced += out.size
                    self._check_length(produced)
                    if out.size:
                        yield out
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            produced += tail.size
            if tail.size:
                yield tail
        if produced == 0:
            raise EmptyAudioError("the audio stream holds no samples")

    def _check_length(self, produced: int) -> None:
        if self._max_duration_s is not None and produced > (self._max_duration_s + 1.0) * self.sample_rate:
            raise AudioTooLongError(f"the audio is longer than the limit of {self._max_duration_s:.0f} s")

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _to_mono(planar: npt.NDArray[Any]) -> FloatArray:
    data = planar.astype(np.float32, copy=False)
    if data.ndim == 2:
        data = data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0]
    # NaN or inf from a broken stream would poison every window it touches.
    return np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)


def open_audio(
    source: AudioSource, *, max_duration_s: float | None = None, sample_rate: int = SAMPLE_RATE
) -> AudioReader:
    """Open a file path, bytes or binary file object for streaming decode (mono at ``sample_rate``)."""
    return AudioReader(source, max_duration_s=max_duration_s, sample_rate=sample_rate)


def load_audio(
    source: AudioSource, *, max_duration_s: float | None = None, sample_rate: int = SAMPLE_RATE
) -> FloatArray:
    """The whole input as one mono float32 array at ``sample_rate`` (for short inputs and tests)."""
    with open_audio(source, max_duration_s=max_duration_s, sample_rate=sample_rate) as reader:
        parts = list(reader.chunks())
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def resample(samples: npt.NDArray[Any], sample_rate: int, target_rate: int = SAMPLE_RATE) -> FloatArray:
    """Mono float32 at ``target_rate`` (22,050 Hz) from an array of samples (1-D, or (n, channels))."""
    import soxr

    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1, dtype=np.float32)
    if data.ndim != 1:
        raise UnsupportedAudioError(f"expected a 1-D or (samples, channels) array, got shape {data.shape}")
    if data.size == 0:
        raise EmptyAudioError("the array holds no samples")
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    if sample_rate == target_rate:
        return data
    if sample_rate <= 0:
        raise UnsupportedAudioError(f"invalid sample rate {sample_rate}")
    out: FloatArray = soxr.resample(data, sample_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    return out
