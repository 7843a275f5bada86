"""Where the model's time goes: front end (CQT, log, batch norm, harmonic stacking) vs the heads.

Runs the OpenVINO model (fp32 from ``nmp.onnx``, and the int8 one) on real windows with
``PERF_COUNT`` and sums each executed node's time by the part of the graph its (TensorFlow)
name says it belongs to; prints the slowest nodes too. One stream, one thread, so the times
add up; best of ``--rounds`` per node (the machine is shared).

    nice .venv/bin/python bench/profile_model.py
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

import numpy as np

PARTS = {
    "front end: CQT": ("cq_t2010v2",),
    "front end: log, batch norm": ("normalized_log", "model_1/batch_normalization/"),
    "front end: harmonic stacking": ("harmonic-stacking", "Concat_", "Squeeze_", "Unsqueeze_", "Slice_"),
    "heads: contour": ("conv2d_1/", "contours-reduced"),
    "heads: note": ("conv2d_2/", "conv2d_3/"),
    "heads: onset": ("conv2d_4/", "conv2d_5/", "model_1/concat/"),
}


def _part(name: str) -> str:
    for part, keys in PARTS.items():
        if any(k in name for k in keys):
            return part
    return "other (reorders, transposes)"


def _windows(n: int) -> np.ndarray:
    from _audio import test_recording
    from midiscribe.core import frames
    from midiscribe.core.audio import load_audio

    samples = load_audio(str(test_recording(60.0)))
    out = [w.copy() for w in frames.windows([samples])]
    return np.stack(out[:n])


def profile(precision: str, x: np.ndarray, rounds: int) -> dict[str, float]:
    import openvino as ov

    from midiscribe.core.model import find_weights
    from midiscribe.core.openvino_model import read_int8_model, stack_harmonics_channels_first

    core = ov.Core()
    model = core.read_model(*read_int8_model()) if precision == "int8" else core.read_model(str(find_weights()))
    model.reshape([2, x.shape[1], 1])
    stack_harmonics_channels_first(model)
    config = {"NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1", "PERF_COUNT": "YES", "INFERENCE_PRECISION_HINT": "f32"}
    request: Any = core.compile_model(model, "CPU", config).create_infer_request()
    best: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for _ in range(rounds):
        totals: dict[str, float] = defaultdict(float)
        for i in range(0, x.shape[0] - 1, 2):
            request.infer({0: x[i : i + 2, :, None]})
            for p in request.profiling_info:
                totals[p.node_name] += p.real_time.total_seconds()
                kinds[p.node_name] = f"{p.node_type} {p.exec_type}"
        for name, t in totals.items():
            best[name] = min(best.get(name, t), t)
    windows = 2 * (x.shape[0] // 2)
    parts: dict[str, float] = defaultdict(float)
    for name, t in best.items():
        parts[_part(name)] += 1000 * t / windows
    total = sum(parts.values())
    print(f"\n{precision}: {total:.2f} ms a window (one thread), {windows} windows")
    print("| part | ms a window | share |\n|---|---|---|")
    for part in sorted(parts, key=lambda p: -parts[p]):
        print(f"| {part} | {parts[part]:.2f} | {100 * parts[part] / total:.0f}% |")
    print("slowest nodes:")
    for name in sorted(best, key=lambda n: -best[n])[:6]:
        print(f"  {1000 * best[name] / windows:6.2f} ms  {kinds[name]:28s} {name[:70]}")
    return dict(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--windows", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    x = _windows(args.windows)
    for precision in ("fp32", "int8"):
        profile(precision, x, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
