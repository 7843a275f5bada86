"""Benchmark recordings: the real eval recordings concatenated to a target length.

The eval set (``../shared/eval`` beside the project) holds about 19 minutes of real and rendered music. A
``D``-second test file is those recordings, decoded with midiscribe's own loader (mono,
22,050 Hz), joined in manifest order and repeated until ``D`` seconds, then cut to exactly
``D`` s and written once as 16-bit mono 22,050 Hz WAV to the cache directory
(``bench/.cache/`` by default, git-ignored). Later runs reuse the file.

Both tools read the same WAV, so neither pays for a resampler the other skips.
"""

from __future__ import annotations

import json
import os
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

EVAL_DIR = Path(os.environ.get("MIDISCRIBE_EVAL_DIR", Path(__file__).resolve().parents[2] / "shared" / "eval"))
MANIFEST = EVAL_DIR / "manifest.json"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SAMPLE_RATE = 22_050


def manifest_items(manifest: Path = MANIFEST) -> list[dict[str, object]]:
    """The eval manifest's items, with ``audio`` and ``reference_csv`` made absolute."""
    items: list[dict[str, object]] = json.loads(manifest.read_text())
    base = manifest.parent
    for item in items:
        for key in ("audio", "reference_csv", "reference_mid"):
            if key in item:
                item[key] = str(base / str(item[key]))
    return items


def _recordings(manifest: Path) -> Iterator[npt.NDArray[np.int16]]:
    """Each eval recording as 16-bit samples at 22,050 Hz, forever, in manifest order."""
    from midiscribe.core.audio import load_audio

    decoded: list[npt.NDArray[np.int16]] = []
    for item in manifest_items(manifest):
        samples = load_audio(str(item["audio"]))
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype(np.int16)
        decoded.append(pcm)
        yield pcm
    if not decoded:
        raise RuntimeError(f"{manifest} lists no recordings")
    while True:
        yield from decoded


def test_recording(
    duration_s: float, cache_dir: Path = CACHE_DIR, manifest: Path = MANIFEST, *, voices: int = 1
) -> Path:
    """Path of a ``duration_s``-second WAV of concatenated eval recordings, made on first use.

    With ``voices`` > 1, that many copies of the recording, each started at a different
    point, are mixed: dense polyphony, like a band or an orchestra, on which basic-pitch's
    quadratic note decoder shows.
    """
    if voices > 1:
        return _dense(duration_s, voices, cache_dir, manifest)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"concat_{duration_s:g}s.wav"
    if path.exists():
        return path
    target = round(duration_s * SAMPLE_RATE)
    tmp = path.with_suffix(".wav.part")
    written = 0
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        for pcm in _recordings(manifest):
            part = pcm[: target - written]
            out.writeframes(part.astype("<i2").tobytes())
            written += part.size
            if written >= target:
                break
    tmp.replace(path)
    return path


def _dense(duration_s: float, voices: int, cache_dir: Path, manifest: Path) -> Path:
    path = cache_dir / f"concat_{duration_s:g}s_x{voices}.wav"
    if path.exists():
        return path
    with wave.open(str(test_recording(duration_s, cache_dir, manifest)), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32)
    mix = sum(np.roll(pcm, k * pcm.size // voices) for k in range(voices)) / voices
    tmp = path.with_suffix(".wav.part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.asarray(mix).astype("<i2").tobytes())
    tmp.replace(path)
    return path


def wav_duration_s(path: Path) -> float:
    with wave.open(str(path), "rb") as f:
        return f.getnframes() / f.getframerate()
