"""Which inference backend and precision to run, decided once at start from the CPU (issue 13).

Measured on an AMD EPYC with AVX-512 VNNI and BF16 (no AMX), over the 722 windows of the 44
dev recordings, against onnxruntime FP32 in the same run:

* OpenVINO int8 (the committed ``nmp-int8`` model, five convolutions after the CQT quantized):
  about 2x faster, 2.3 % / 0.9 % of note / onset frames thresholded differently, dev F1 not lower.
  It was built with NNCF's overflow fix off, which is only exact where int8 dot products
  accumulate in int32: VNNI (AVX-512 or AVX) or AMX. Elsewhere its results would be wrong.
* OpenVINO bf16 on the whole model: 1.8x, but 3.4 % of note frames differ and onset F1 drops by
  0.005, beyond the accuracy guard's 3 % / 0.003; it runs only when asked for.
* onnxruntime FP32: the reference, and the fallback wherever nothing faster is known safe.

``auto`` therefore means: OpenVINO int8 when OpenVINO is installed and the CPU has VNNI or AMX,
otherwise onnxruntime FP32. ``MIDISCRIBE_BACKEND`` / ``MIDISCRIBE_PRECISION`` (or the CLI's
``--backend`` / ``--precision``) override it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from midiscribe.errors import ModelError

Backend = Literal["auto", "onnxruntime", "openvino"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
PRECISIONS: tuple[str, ...] = get_args(Precision)

# x86 flags (Linux /proc/cpuinfo names) under which int8 with the overflow fix off is exact.
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
OPENVINO_INSTALL_HINT = "pip install 'openvino>=2026.4,<2027'"


@dataclass(frozen=True, slots=True)
class Choice:
    """The backend and precision to run, and why (logged at model load, shown by the bench)."""

    backend: Literal["onnxruntime", "openvino"]
    precision: Literal["fp32", "bf16", "int8"]
    reason: str

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux names them; empty where they cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            return frozenset(value.split())
    return frozenset()


def openvino_installed() -> bool:
    """Whether OpenVINO can be imported, without importing it (the CLI's cold start stays short)."""
    return importlib.util.find_spec("openvino") is not None


def _setting(value: str | None, env: str, allowed: tuple[str, ...]) -> str:
    chosen = (value or os.environ.get(env) or "auto").strip().lower()
    if chosen not in allowed:
        raise ModelError(f"{env}={chosen!r} is not one of {', '.join(allowed)}")
    return chosen


def choose(
    backend: str | None = None,
    precision: str | None = None,
    *,
    flags: frozenset[str] | None = None,
    have_openvino: bool | None = None,
) -> Choice:
    """Resolve ``auto`` and the environment into one backend and precision, refusing unsafe asks.

    ``backend`` / ``precision`` default to ``MIDISCRIBE_BACKEND`` / ``MIDISCRIBE_PRECISION``,
    then ``auto``. ``flags`` and ``have_openvino`` are this machine's unless given (tests).
    """
    want_backend = _setting(backend, "MIDISCRIBE_BACKEND", BACKENDS)
    want_precision = _setting(precision, "MIDISCRIBE_PRECISION", PRECISIONS)
    flags = cpu_flags() if flags is None else flags
    have_openvino = openvino_installed() if have_openvino is None else have_openvino
    int8_safe = bool(flags & INT8_FLAGS)
    if want_backend == "onnxruntime" or (want_backend == "auto" and want_precision == "fp32"):
        if want_precision not in ("auto", "fp32"):
            raise ModelError(f"onnxruntime runs the model in fp32 only, not {want_precision}; use the openvino backend")
        return Choice("onnxruntime", "fp32", "asked for" if want_backend == "onnxruntime" else "fp32 asked for")
    if not have_openvino:
        if want_backend == "openvino" or want_precision != "auto":
            raise ModelError(f"the openvino backend is not installed: {OPENVINO_INSTALL_HINT}")
        return Choice("onnxruntime", "fp32", "OpenVINO is not installed")
    if want_precision == "auto":
        if int8_safe:
            return Choice("openvino", "int8", "the CPU has VNNI/AMX int8 dot products")
        if want_backend == "auto":
            return Choice("onnxruntime", "fp32", "no VNNI/AMX: int8 is not exact here, bf16 drifts too much")
        return Choice("openvino", "fp32", "asked for openvino; no VNNI/AMX for int8")
    if want_precision == "int8" and not int8_safe:
        raise ModelError(
            "int8 needs a CPU with VNNI or AMX (the model was quantized without the overflow fix): "
            f"this CPU has none of {', '.join(sorted(INT8_FLAGS))}"
        )
    if want_precision == "bf16" and not flags & BF16_FLAGS:
        raise ModelError(f"bf16 needs a CPU with {' or '.join(sorted(BF16_FLAGS))}; this one has neither")
    return Choice("openvino", want_precision, "asked for")  # type: ignore[arg-type]
