"""Test recordings made by the tests: tones and files in every container we claim to read."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

SR = 22_050


def tone(
    pitch: float, seconds: float, *, sr: int = SR, amp: float = 0.5, harmonics: int = 4
) -> npt.NDArray[np.float32]:
    """A plucked, harmonic tone at MIDI ``pitch`` (sharp attack, exponential decay)."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(harmonics))
    env = np.exp(-t * 2.0) * np.minimum(1.0, t / 0.005)
    out: npt.NDArray[np.float32] = (amp * env * wave / 1.7).astype(np.float32)
    return out


def melody(events: list[tuple[float, float, int]], total_s: float, *, sr: int = SR) -> npt.NDArray[np.float32]:
    """Mix tones (start_s, length_s, pitch) into a track of ``total_s`` seconds."""
    out = np.zeros(int(total_s * sr), dtype=np.float32)
    for start, length, pitch in events:
        note = tone(pitch, length, sr=sr)
        i = round(start * sr)
        out[i : i + note.size] += note[: max(0, out.size - i)]
    return out


# name -> (container format, audio codec, sample format, channels, with video)
FORMATS: dict[str, tuple[str, str, str, int, bool]] = {
    "wav": ("wav", "pcm_s16le", "s16", 2, False),
    "flac": ("flac", "flac", "s16", 1, False),
    "mp3": ("mp3", "libmp3lame", "fltp", 2, False),
    "ogg": ("ogg", "vorbis", "fltp", 2, False),
    "opus": ("ogg", "libopus", "flt", 2, False),
    "m4a": ("ipod", "aac", "fltp", 2, False),
    "aiff": ("aiff", "pcm_s16be", "s16", 1, False),
    "webm": ("webm", "libopus", "flt", 2, True),
    "mp4": ("mp4", "aac", "fltp", 2, True),
    "mov": ("mov", "aac", "fltp", 2, True),
    "mkv": ("matroska", "flac", "s16", 2, True),
}


def encode(path: Path, samples: npt.NDArray[np.float32], *, sr: int = 44_100, kind: str = "wav") -> Path:
    """Write mono ``samples`` (at ``sr``) as ``kind`` from FORMATS, with a video track where listed."""
    fmt, codec, sample_fmt, channels, video = FORMATS[kind]
    rate = 48_000 if codec == "libopus" else sr
    if rate != sr:
        import soxr

        samples = soxr.resample(samples, sr, rate).astype(np.float32)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo" if channels == 2 else "mono"
        stream.format = sample_fmt
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "-2"}
        vstream = None
        if video:
            vcodec = "libvpx" if fmt == "webm" else "mpeg4"
            vstream = container.add_stream(vcodec, rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        _write_audio(container, stream, samples, rate, channels, sample_fmt)
        if vstream is not None:
            _write_video(container, vstream, seconds=samples.size / rate)
    return path


def _write_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    samples: npt.NDArray[np.float32],
    rate: int,
    channels: int,
    sample_fmt: str,
) -> None:
    block = 1024
    layout = "stereo" if channels == 2 else "mono"
    for i in range(0, samples.size, block):
        chunk = samples[i : i + block]
        data = np.tile(chunk, (channels, 1))
        if sample_fmt == "s16":
            frame_data = (np.clip(data, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1)
        elif sample_fmt == "flt":
            frame_data = data.T.reshape(1, -1).astype(np.float32)
        else:  # planar float
            frame_data = data.astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame_data), format=sample_fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _write_video(container: av.container.OutputContainer, stream: av.VideoStream, seconds: float) -> None:
    for i in range(max(1, int(seconds * 10))):
        img = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
