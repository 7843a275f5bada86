"""Choosing the inference backend and precision from the CPU and the overrides (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from midiscribe.core.backends import choose, cpu_flags
from midiscribe.errors import ModelError

EPYC = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})  # the study's machine
AVX2_ONLY = frozenset({"avx2", "fma"})
SAPPHIRE_RAPIDS = frozenset({"avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "amx_tile"})


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIDISCRIBE_BACKEND", raising=False)
    monkeypatch.delenv("MIDISCRIBE_PRECISION", raising=False)


@pytest.mark.parametrize(
    ("flags", "have_openvino", "expected"),
    [
        (EPYC, True, "openvino int8"),
        (SAPPHIRE_RAPIDS, True, "openvino int8"),
        (AVX2_ONLY, True, "onnxruntime fp32"),  # int8 without VNNI would overflow; bf16 drifts
        (EPYC, False, "onnxruntime fp32"),
        (frozenset(), True, "onnxruntime fp32"),  # flags unreadable (not Linux): nothing assumed
    ],
)
def test_auto_picks_the_fastest_safe_choice(flags: frozenset[str], have_openvino: bool, expected: str) -> None:
    choice = choose(flags=flags, have_openvino=have_openvino)
    assert choice.label == expected
    assert choice.reason


def test_environment_overrides_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDISCRIBE_BACKEND", "onnxruntime")
    assert choose(flags=EPYC, have_openvino=True).label == "onnxruntime fp32"
    assert choose("openvino", flags=EPYC, have_openvino=True).label == "openvino int8"
    monkeypatch.setenv("MIDISCRIBE_BACKEND", "auto")
    monkeypatch.setenv("MIDISCRIBE_PRECISION", "bf16")
    assert choose(flags=EPYC, have_openvino=True).label == "openvino bf16"
    assert choose(precision="fp32", flags=EPYC, have_openvino=True).label == "onnxruntime fp32"
    assert choose("openvino", "fp32", flags=EPYC, have_openvino=True).label == "openvino fp32"


@pytest.mark.parametrize(
    ("backend", "precision", "flags", "have_openvino", "message"),
    [
        ("onnxruntime", "int8", EPYC, True, "fp32 only"),
        ("openvino", "auto", EPYC, False, "pip install"),
        ("auto", "int8", EPYC, False, "pip install"),
        ("openvino", "int8", AVX2_ONLY, True, "VNNI"),
        ("auto", "bf16", AVX2_ONLY, True, "bf16 needs"),
        ("tensorflow", "auto", EPYC, True, "MIDISCRIBE_BACKEND"),
        ("auto", "fp16", EPYC, True, "MIDISCRIBE_PRECISION"),
    ],
)
def test_unsafe_or_impossible_asks_are_refused(
    backend: str, precision: str, flags: frozenset[str], have_openvino: bool, message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        choose(backend, precision, flags=flags, have_openvino=have_openvino)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDISCRIBE_PRECISION", "int4")
    with pytest.raises(ModelError, match="MIDISCRIBE_PRECISION='int4'"):
        choose(flags=EPYC, have_openvino=True)


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_vnni"}
    assert cpu_flags(tmp_path / "absent") == frozenset()
