"""Speed and peak memory of midiscribe against basic-pitch 0.4.0 (ONNX), end to end.

For each test length (default 60 s and 600 s of concatenated eval recordings, see
``_audio.py``), each job runs in a fresh Python process, one after another:

(a) midiscribe: ``load_model()``, then ``transcribe(path)`` + ``write_midi``;
(b) basic-pitch 0.4.0: ``Model(nmp.onnx)``, then ``predict(path, model)`` + ``PrettyMIDI.write``;
(c) midiscribe's model alone on the same windows (``load_audio``, ``frames.windows``,
    ``model.run`` in batches of ``BATCH_WINDOWS``; no note decoding), the floor that
    end-to-end time is compared with.

Then (d) CLI cold start: best of 3 wall times of ``midiscribe --version`` and of
``midiscribe transcribe`` (and ``basic-pitch``) on a 2 s file.

Columns: ``startup`` is imports + model load inside the process; ``wall`` is the end-to-end
work after that (decode, inference, notes, MIDI written); ``process`` is the whole
subprocess, interpreter start to exit; RTF is audio seconds per wall second; RSS is the
child's peak resident memory. Speed ratio = basic-pitch wall / midiscribe wall.

Run (about 3 minutes on 2 cores; never run two benchmarks at once)::

    .venv/bin/python bench/speed.py
    .venv/bin/python bench/speed.py --durations 60 --skip-basic-pitch --json speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _audio import test_recording, wav_duration_s
from _child import Timings, run_child, wait_for_quiet

BIN = Path(sys.executable).parent


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--durations", type=float, nargs="+", default=[60.0, 600.0], metavar="S", help="test lengths, s")
    p.add_argument(
        "--voices",
        type=int,
        nargs="+",
        default=[1, 4],
        metavar="N",
        help="1: the eval recordings end to end; N > 1: N of them mixed (dense polyphony) (default: 1 4)",
    )
    p.add_argument("--skip-basic-pitch", action="store_true", help="measure midiscribe only")
    p.add_argument("--skip-cli", action="store_true", help="skip the CLI cold-start measurements")
    p.add_argument("--repeats", type=int, default=3, help="runs per job; the fastest is reported (default 3)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write all measurements as JSON")
    return p.parse_args(argv)


def _best(kind: str, audio: Path, repeats: int) -> Timings:
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-") as out:
            runs.append(run_child(kind, audio, Path(out)))
    best = min(runs, key=lambda r: float(r["transcribe_s"]))
    best["wall_s"] = best["transcribe_s"] + best.get("write_s", 0.0)
    return best


def _label(res: dict[str, Any]) -> str:
    voices = res.get("voices", 1)
    return f"{res['audio_s']:.0f}" + (f" ({voices} mixed)" if voices > 1 else "")


def _row(res: dict[str, Any], tool: str, r: Timings) -> str:
    wall, audio_s = r["wall_s"], res["audio_s"]
    return (
        f"| {_label(res)} | {tool} | {r['startup_s']:7.2f} | {wall:7.2f} | {r['process_s']:7.2f} | "
        f"{audio_s / wall:6.1f} | {r['peak_rss_mb']:7.0f} | {r.get('notes', '-')!s:>6} | "
        f"{r['other_cpu_pct']:5.0f} |"
    )


def _rss_trace(r: Timings) -> str:
    """Highest RSS in each quarter of the process's life, from the parent's polling."""
    samples = r.get("rss_samples") or []
    if not samples:
        return "n/a"
    end = samples[-1][0]
    quarters = [[mb for t, mb in samples if q * end / 4 <= t <= (q + 1) * end / 4] for q in range(4)]
    return " / ".join(f"{max(mbs):.0f}" if mbs else "-" for mbs in quarters)


def bench_length(duration: float, voices: int, args: argparse.Namespace) -> dict[str, Any]:
    audio = test_recording(duration, voices=voices)
    audio_s = wav_duration_s(audio)
    res: dict[str, Any] = {"audio_s": audio_s, "voices": voices, "file": str(audio)}
    res["midiscribe"] = _best("midiscribe", audio, args.repeats)
    res["inference"] = _best("inference", audio, args.repeats)
    if not args.skip_basic_pitch:
        res["basic-pitch"] = _best("basic-pitch", audio, args.repeats)
    return res


def _print_lengths(results: list[dict[str, Any]]) -> None:
    print("| audio s | tool | startup s | wall s | process s | RTF | peak RSS MB | notes | other CPU % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for res in results:
        print(_row(res, "midiscribe", res["midiscribe"]))
        print(_row(res, "midiscribe model only", res["inference"]))
        if "basic-pitch" in res:
            print(_row(res, "basic-pitch 0.4.0 onnx", res["basic-pitch"]))
    print()
    print(
        "| audio s | speed ratio bp/ms (wall) | (process) | memory ratio bp/ms "
        "| ms wall vs model only | model share of ms wall |"
    )
    print("|---|---|---|---|---|---|")
    for res in results:
        ms, inf, bp = res["midiscribe"], res["inference"], res.get("basic-pitch")
        speed = f"{bp['wall_s'] / ms['wall_s']:.2f}x" if bp else "-"
        proc = f"{bp['process_s'] / ms['process_s']:.2f}x" if bp else "-"
        mem = f"{bp['peak_rss_mb'] / ms['peak_rss_mb']:.2f}x" if bp else "-"
        over = 100 * (ms["wall_s"] / inf["infer_s"] - 1)
        over_dec = 100 * (ms["wall_s"] / inf["wall_s"] - 1)
        share = 100 * inf["infer_s"] / ms["wall_s"]
        print(
            f"| {_label(res)} | {speed} | {proc} | {mem} | "
            f"{over:+.1f}% vs infer, {over_dec:+.1f}% vs decode+infer | {share:.0f}% |"
        )
    print()
    for res in results:
        inf = res["inference"]
        print(
            f"{_label(res)} s: model-only split: decode {inf['decode_s']:.2f} s, "
            f"windows+model.run {inf['infer_s']:.2f} s ({inf['windows']} windows); "
            f"midiscribe write_midi {res['midiscribe']['write_s'] * 1000:.0f} ms; "
            f"max RSS per quarter of the run (MB): ms {_rss_trace(res['midiscribe'])}"
            + (f", bp {_rss_trace(res['basic-pitch'])}" if "basic-pitch" in res else "")
        )


def _best_wall(cmd: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-cli-") as out:
            full = [c.replace("{out}", out) for c in cmd]
            wait_for_quiet()
            t0 = time.perf_counter()
            done = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
        "midiscribe transcribe 2 s": _best_wall([cli, "transcribe", short, "-o", "{out}"]),
    }
    if not skip_basic_pitch:
        bp = [str(BIN / "basic-pitch"), "{out}", short, "--model-serialization", "onnx", "--save-midi"]
        out["basic-pitch 2 s (onnx)"] = _best_wall(bp)
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load[0]:.2f} at start\n")
    results = [bench_length(d, v, args) for v in args.voices for d in args.durations]
    _print_lengths(results)
    cli: dict[str, float] = {}
    if not args.skip_cli:
        cli = bench_cli(args.skip_basic_pitch)
        print("\n| CLI cold start (best of 3) | wall s |")
        print("|---|---|")
        for name, wall in cli.items():
            print(f"| {name} | {wall:.2f} |")
    print(
        "\nother CPU %: CPU time used by other processes during the run, % of one core; each job first"
        " waits for an idle machine, but a high figure means it competed for the 2 cores"
    )
    if args.json:
        for res in results:  # the traces are long; keep the summary
            for key in ("midiscribe", "inference", "basic-pitch"):
                if key in res:
                    res[key]["rss_trace_mb"] = _rss_trace(res[key])
                    res[key].pop("rss_samples", None)
        args.json.write_text(json.dumps({"lengths": results, "cli": cli, "loadavg": load}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
