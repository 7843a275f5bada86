"""Decoding: every listed container, mono mixdown, resampling, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiogen import FORMATS, encode, tone
from midiscribe.core.audio import load_audio, open_audio, resample
from midiscribe.errors import AudioNotFoundError, AudioTooLongError, EmptyAudioError, UnsupportedAudioError


def dominant_hz(x: np.ndarray, sr: int = 22_050) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * sr / x.size)


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_decodes_every_listed_format(tmp_path: Path, kind: str) -> None:
    src = tone(69, 1.5, sr=44_100)  # A4, 440 Hz
    path = encode(tmp_path / f"a.{kind}", src, sr=44_100, kind=kind)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    # Encoders add priming and padding; the length stays within ~60 ms of 1.5 s.
    assert abs(samples.size / 22_050 - 1.5) < 0.06, samples.size / 22_050
    assert abs(dominant_hz(samples) - 440) < 3
    assert np.max(np.abs(samples)) > 0.1


def test_reads_bytes_and_file_objects(tmp_path: Path) -> None:
    path = encode(tmp_path / "a.flac", tone(60, 0.5, sr=44_100), kind="flac")
    a = load_audio(path)
    b = load_audio(path.read_bytes())
    with path.open("rb") as fh:
        c = load_audio(fh)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_stereo_is_mixed_to_mono_by_mean(tmp_path: Path) -> None:
    import av

    path = tmp_path / "lr.wav"
    n = 22_050
    left = np.full(n, 0.5, dtype=np.float32)
    right = np.full(n, -0.25, dtype=np.float32)
    with av.open(str(path), "w", format="wav") as c:
        s = c.add_stream("pcm_f32le", rate=22_050)
        s.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(
            np.stack([left, right]).T.reshape(1, -1).copy(), format="flt", layout="stereo"
        )
        frame.sample_rate = 22_050
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    mono = load_audio(path)
    assert np.allclose(mono[100:-100], 0.125, atol=1e-4)


def test_info_reports_the_container(tmp_path: Path) -> None:
    path = encode(tmp_path / "a.mp4", tone(60, 1.0, sr=44_100), kind="mp4")
    with open_audio(path) as reader:
        assert reader.info.sample_rate == 44_100
        assert reader.info.codec == "aac"
        assert reader.info.duration_s is not None and abs(reader.info.duration_s - 1.0) < 0.1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioNotFoundError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty"):
        load_audio(tmp_path / "empty.mp3")


@pytest.mark.parametrize(
    "content",
    [
        b"this is plainly a text file, not audio\n" * 50,
        bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8)),
    ],
    ids=["text", "random-bytes"],
)
def test_garbage_is_unsupported(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.wav").write_bytes(content)
    with pytest.raises(UnsupportedAudioError):
        load_audio(tmp_path / "x.wav")


def test_video_without_audio_is_unsupported(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    with pytest.raises(UnsupportedAudioError, match="no audio stream"):
        load_audio(path)


def test_audio_stream_with_no_samples(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "zero.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22_050)
        w.writeframes(b"")
    with pytest.raises(EmptyAudioError):
        load_audio(path)


def test_duration_limit(tmp_path: Path) -> None:
    path = encode(tmp_path / "long.flac", np.zeros(44_100 * 5, np.float32), kind="flac")
    with pytest.raises(AudioTooLongError, match="limit"):
        load_audio(path, max_duration_s=2)
    assert load_audio(path, max_duration_s=10).size > 0


def test_resample_array() -> None:
    x = tone(69, 1.0, sr=48_000)
    y = resample(np.stack([x, x], axis=1), 48_000)
    assert abs(y.size - 22_050) <= 1
    assert abs(dominant_hz(y) - 440) < 3
    with pytest.raises(EmptyAudioError):
        resample(np.zeros(0), 44_100)
