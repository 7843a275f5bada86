"""Speed and peak memory of midiscribe (FP32 and the fast path) against basic-pitch 0.4.0, end to end.

Cases (default ``60 600 600:4``): 60 s and 600 s of concatenated eval recordings, and 600 s of
four of them mixed (dense polyphony), see ``_audio.py``. For each case these jobs run, each in a
fresh Python process, **interleaved**: round 1 runs every job once, then round 2, ... so that a
change in the machine's load hits all of them alike (the machine is shared):

* ``basic-pitch 0.4.0``: ``Model(nmp.onnx)``, then ``predict(path, model)`` + ``PrettyMIDI.write``;
* ``midiscribe fp32``: ``MIDISCRIBE_BACKEND=onnxruntime``, ``transcribe(path)`` + ``write_midi``;
* ``midiscribe fast``: the same with ``auto`` (or ``--fast-backend`` / ``--fast-precision``);
* ``model only`` (fp32 and fast): midiscribe's model alone on the same windows (decode, windows,
  ``model.run`` in the model's batches; no notes): the floor for end-to-end time.

Then the CLI's cold start: best of 3 wall times of ``midiscribe --version`` and of
``midiscribe transcribe`` (and ``basic-pitch``) on a 2 s file.

Columns: ``wall`` is the end-to-end work after imports and model load (decode, inference, notes,
MIDI written), best of the rounds; ``x real time`` is audio seconds per wall second; ``vs bp`` is
basic-pitch's best wall over this one's (and, in brackets, the median of the per-round ratios,
which a load change during the run disturbs less); ``RSS`` is the child's peak resident memory;
``model share`` is model-only inference time over end-to-end wall; ``split`` is decode / model /
notes (notes: ``retune`` of the kept outputs, timed again after the run).

Run with ``nice`` on a shared machine; ratios from one run are what to compare (absolute seconds
move with the other processes' load, shown as ``other CPU %``)::

    nice .venv/bin/python bench/speed.py --max-wait-s 0
    nice .venv/bin/python bench/speed.py --cases 60 --repeats 2 --skip-cli --json speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _child
from _audio import test_recording, wav_duration_s
from _child import Timings, run_child, wait_for_quiet

BIN = Path(sys.executable).parent


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument(
        "--cases",
        nargs="+",
        default=["60", "600", "600:4"],
        metavar="S[:N]",
        help="seconds of audio, and N > 1 recordings mixed (dense) (default: 60 600 600:4)",
    )
    p.add_argument("--skip-basic-pitch", action="store_true", help="measure midiscribe only")
    p.add_argument("--skip-cli", action="store_true", help="skip the CLI cold-start measurements")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the fastest is reported (default 3)")
    p.add_argument("--fast-backend", default="auto", help="MIDISCRIBE_BACKEND of the fast path (default auto)")
    p.add_argument("--fast-precision", default="auto", help="MIDISCRIBE_PRECISION of the fast path (default auto)")
    p.add_argument(
        "--max-wait-s", type=float, default=180.0, help="wait at most this long for an idle machine before a job"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write all measurements as JSON")
    return p.parse_args(argv)


def _jobs(args: argparse.Namespace) -> dict[str, tuple[str, dict[str, str]]]:
    fp32 = {"MIDISCRIBE_BACKEND": "onnxruntime", "MIDISCRIBE_PRECISION": "fp32"}
    fast = {"MIDISCRIBE_BACKEND": args.fast_backend, "MIDISCRIBE_PRECISION": args.fast_precision}
    jobs = {
        "midiscribe fp32": ("midiscribe", fp32),
        "midiscribe fast": ("midiscribe", fast),
        "model only fp32": ("inference", fp32),
        "model only fast": ("inference", fast),
    }
    if not args.skip_basic_pitch:
        jobs = {"basic-pitch 0.4.0": ("basic-pitch", {}), **jobs}
    return jobs


def bench_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    seconds, _, voices = case.partition(":")
    audio = test_recording(float(seconds), voices=int(voices or 1))
    res: dict[str, Any] = {"audio_s": wav_duration_s(audio), "voices": int(voices or 1), "file": str(audio)}
    jobs = _jobs(args)
    runs: dict[str, list[Timings]] = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, (kind, env) in jobs.items():
            with tempfile.TemporaryDirectory(prefix="bench-") as out:
                r = run_child(kind, audio, Path(out), env)
            r["wall_s"] = r["transcribe_s"] + r.get("write_s", 0.0)
            r.pop("rss_samples", None)
            runs[name].append(r)
    res["runs"] = runs
    res["best"] = {name: min(rs, key=lambda r: float(r["wall_s"])) for name, rs in runs.items()}
    return res


def _label(res: dict[str, Any]) -> str:
    voices = res.get("voices", 1)
    return f"{res['audio_s']:.0f}" + (f" ({voices} mixed)" if voices > 1 else "")


def _paired(res: dict[str, Any], name: str) -> str:
    """basic-pitch's best wall over this job's, and the median of the per-round ratios."""
    runs = res["runs"]
    if "basic-pitch 0.4.0" not in runs:
        return "-"
    bp = res["best"]["basic-pitch 0.4.0"]["wall_s"]
    rounds = [b["wall_s"] / m["wall_s"] for b, m in zip(runs["basic-pitch 0.4.0"], runs[name], strict=True)]
    return f"{bp / res['best'][name]['wall_s']:.2f}x ({statistics.median(rounds):.2f}x)"


def _print_cases(results: list[dict[str, Any]]) -> None:
    print(
        "| audio s | tool | model | wall s | x real time | vs basic-pitch | peak RSS MB | model share "
        "| split decode / model / notes s | notes | other CPU % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for res in results:
        best = res["best"]
        for name in ("basic-pitch 0.4.0", "midiscribe fp32", "midiscribe fast"):
            if name not in best:
                continue
            r = best[name]
            share, split, model = "-", "-", r.get("model", "onnxruntime fp32")
            if name != "basic-pitch 0.4.0":
                inf = best[name.replace("midiscribe", "model only")]
                share = f"{100 * inf['infer_s'] / r['wall_s']:.0f}%"
                split = f"{inf['decode_s']:.2f} / {inf['infer_s']:.2f} / {r['notes_s']:.2f}"
            print(
                f"| {_label(res)} | {name} | {model} | {r['wall_s']:.2f} | {res['audio_s'] / r['wall_s']:.1f} | "
                f"{_paired(res, name) if name != 'basic-pitch 0.4.0' else '1.00x'} | {r['peak_rss_mb']:.0f} | "
                f"{share} | {split} | {r.get('notes', '-')} | {r['other_cpu_pct']:.0f} |"
            )
    print()
    print("| audio s | fast vs fp32 (end to end) | fast vs fp32 (model only) | model-only windows |")
    print("|---|---|---|---|")
    for res in results:
        b = res["best"]
        e2e = b["midiscribe fp32"]["wall_s"] / b["midiscribe fast"]["wall_s"]
        mod = b["model only fp32"]["infer_s"] / b["model only fast"]["infer_s"]
        print(f"| {_label(res)} | {e2e:.2f}x | {mod:.2f}x | {b['model only fast']['windows']} |")


def _best_wall(cmd: list[str], repeats: int = 3, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-cli-") as out:
            full = [c.replace("{out}", out) for c in cmd]
            wait_for_quiet()
            t0 = time.perf_counter()
            done = subprocess.run(
                full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
            )
            wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        best = min(best, wall)
    return best


def bench_cli(skip_basic_pitch: bool) -> dict[str, float]:
    short = str(test_recording(2.0))
    cli = str(BIN / "midiscribe")
    out = {
        "midiscribe --version": _best_wall([cli, "--version"]),
        "midiscribe transcribe 2 s (fast)": _best_wall([cli, "transcribe", short, "-o", "{out}"]),
        "midiscribe transcribe 2 s (fp32)": _best_wall(
            [cli, "transcribe", short, "-o", "{out}"], env={"MIDISCRIBE_BACKEND": "onnxruntime"}
        ),
    }
    if not skip_basic_pitch:
        bp = [str(BIN / "basic-pitch"), "{out}", short, "--model-serialization", "onnx", "--save-midi"]
        out["basic-pitch 2 s (onnx)"] = _best_wall(bp)
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _child.MAX_WAIT_S = args.max_wait_s
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load[0]:.2f} at start\n")
    results = [bench_case(case, args) for case in args.cases]
    _print_cases(results)
    cli: dict[str, float] = {}
    if not args.skip_cli:
        cli = bench_cli(args.skip_basic_pitch)
        print("\n| CLI cold start (best of 3) | wall s |")
        print("|---|---|")
        for name, wall in cli.items():
            print(f"| {name} | {wall:.2f} |")
    end = os.getloadavg()
    print(
        f"\nload average {end[0]:.2f} at the end. other CPU %: CPU time other processes used during a job, in % of"
        " one core (max of the best run); a high figure means the job competed for the cores: compare ratios"
        " from one run, not absolute seconds"
    )
    if args.json:
        args.json.write_text(json.dumps({"cases": results, "cli": cli, "loadavg": [load, end]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
