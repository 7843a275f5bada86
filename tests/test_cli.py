"""The `midiscribe` command as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import midiscribe
from audiogen import encode, melody

EXE = Path(sys.executable).with_name("midiscribe")


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("in")
    tune = melody([(0.3, 0.5, 60), (0.9, 0.5, 64), (1.5, 0.5, 67), (2.1, 0.8, 72)], 3.5, sr=44_100)
    garbage = d / "broken.mp3"
    garbage.write_bytes(b"ID3 not really an mp3 " * 100)
    return {
        "flac": encode(d / "tune.flac", tune, kind="flac"),
        "mp4": encode(d / "clip.mp4", tune, kind="mp4"),
        "garbage": garbage,
    }


def test_version_and_help() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"midiscribe {midiscribe.__version__}"
    helptext = run("transcribe", "--help").stdout
    for flag in (
        "--sonify",
        "--notes-csv",
        "--save-model-outputs",
        "--onset-threshold",
        "--program",
        "--overwrite",
    ):
        assert flag in helptext


def test_many_files_one_failure(tmp_path: Path, inputs: dict[str, Path]) -> None:
    out = run(
        "transcribe",
        inputs["flac"],
        inputs["garbage"],
        inputs["mp4"],
        "-o",
        tmp_path,
        "--sonify",
        "--notes-csv",
    )
    assert out.returncode == 1, out.stderr
    assert "broken.mp3" in out.stdout and "failed" in out.stdout
    for stem in ("tune", "clip"):
        for ext in ("mid", "wav", "csv"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 0
    assert not list(tmp_path.glob("broken.*"))
    assert not list(tmp_path.glob(".*part*")), "temporary files left behind"
    with (tmp_path / "tune.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["pitch_midi"]) for r in rows} >= {60, 64, 67, 72}


def test_never_overwrites_unless_asked(tmp_path: Path, inputs: dict[str, Path]) -> None:
    assert run("transcribe", inputs["flac"], "-o", tmp_path).returncode == 0
    target = tmp_path / "tune.mid"
    target.write_bytes(b"precious")
    out = run("transcribe", inputs["flac"], "-o", tmp_path)
    assert out.returncode == 1 and "exists" in out.stdout
    assert target.read_bytes() == b"precious"
    assert run("transcribe", inputs["flac"], "-o", tmp_path, "--overwrite").returncode == 0
    assert target.read_bytes()[:4] == b"MThd"


def test_same_name_twice_in_one_run(tmp_path: Path, inputs: dict[str, Path]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    twin = other / "tune.flac"
    twin.write_bytes(inputs["flac"].read_bytes())
    out = run("transcribe", inputs["flac"], twin, "-o", tmp_path / "out")
    assert out.returncode == 1 and "another input" in out.stdout


def test_retune_from_saved_model_outputs(tmp_path: Path, inputs: dict[str, Path]) -> None:
    assert run("transcribe", inputs["flac"], "-o", tmp_path, "--save-model-outputs", "--notes-csv").returncode == 0
    saved = tmp_path / "tune.npz"
    assert saved.exists()
    retuned = tmp_path / "retuned"
    out = run("transcribe", saved, "-o", retuned, "--notes-csv", "--onset-threshold", "0.95", "--no-melodia")
    assert out.returncode == 0, out.stdout + out.stderr
    n_before = len((tmp_path / "tune.csv").read_text().splitlines())
    n_after = len((retuned / "tune.csv").read_text().splitlines())
    assert n_after < n_before


def test_bad_option_is_a_usage_error(tmp_path: Path, inputs: dict[str, Path]) -> None:
    out = run("transcribe", inputs["flac"], "-o", tmp_path, "--onset-threshold", "3")
    assert out.returncode == 2 and "onset_threshold" in out.stderr
    out = run("transcribe", inputs["flac"], "-o", tmp_path, "--program", "200")
    assert out.returncode == 2


def test_missing_input(tmp_path: Path) -> None:
    out = run("transcribe", tmp_path / "nope.wav", "-o", tmp_path)
    assert out.returncode == 1 and "no such file" in out.stdout


def test_silence_writes_an_empty_but_valid_midi(tmp_path: Path) -> None:
    src = encode(tmp_path / "quiet.wav", np.zeros(44_100 * 2, np.float32), kind="wav")
    out = run("transcribe", src, "-o", tmp_path / "o", "--notes-csv")
    assert out.returncode == 0, out.stdout
    assert (tmp_path / "o" / "quiet.mid").read_bytes()[:4] == b"MThd"
    assert (tmp_path / "o" / "quiet.csv").read_text().splitlines() == [
        "start_s,end_s,pitch_midi,velocity,amplitude,pitch_bends"
    ]


def test_backend_and_precision_flags(tmp_path: Path, inputs: dict[str, Path]) -> None:
    from midiscribe.core.backends import choose

    out = run("transcribe", inputs["flac"], "-o", tmp_path, "--backend", "onnxruntime", "--precision", "int8")
    assert out.returncode == 2 and "fp32 only" in out.stderr
    assert "--backend" in run("transcribe", "--help").stdout
    pitches = {}
    kinds = {"fp32": ("--backend", "onnxruntime")}
    if choose().backend == "openvino":  # the fast path this machine picks, next to fp32
        kinds["fast"] = ("--backend", "auto")
    for name, flags in kinds.items():
        out = run("transcribe", inputs["flac"], "-o", tmp_path / name, "--notes-csv", *flags)
        assert out.returncode == 0, out.stdout + out.stderr
        with (tmp_path / name / "tune.csv").open() as fh:
            pitches[name] = [int(row["pitch_midi"]) for row in csv.DictReader(fh)]
    assert pitches["fp32"] == [60, 64, 67, 72]
    assert pitches.get("fast", pitches["fp32"]) == pitches["fp32"]
