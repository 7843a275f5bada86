"""Peak memory of midiscribe on a one-hour recording (target: under 500 MB).

Transcribes a 3600 s WAV of concatenated eval recordings (see ``_audio.py``; made once,
about 160 MB, in ``bench/.cache/``) with ``transcribe(path)`` + ``write_midi`` in a fresh
process, and reports the child's peak RSS, its RSS over time (the decoder streams, so
memory should grow only by the kept posteriorgrams: note + onset float32 and bend
bins int8, 88 pitches, 86.6 frames/s, about 4.1 MB a minute or 250 MB an hour) and wall times.
``--basic-pitch`` also runs basic-pitch 0.4.0 (ONNX) on the same file for comparison
(about 3 GB and 6-7 minutes for one hour; off by default).

Run::

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --duration 1800 --limit-mb 400
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _audio import test_recording, wav_duration_s
from _child import Timings, run_child


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=3600.0, metavar="S", help="test length, s (3600)")
    p.add_argument("--limit-mb", type=float, default=500.0, help="peak RSS target, MB (500)")
    p.add_argument("--basic-pitch", action="store_true", help="also run basic-pitch 0.4.0 on the same file")
    return p.parse_args(argv)


def _trace(r: Timings, points: int = 8) -> str:
    """Highest RSS in each of ``points`` equal slices of the process's life."""
    samples = r["rss_samples"]
    if not samples:
        return "n/a"
    end = samples[-1][0]
    out = []
    for i in range(points):
        lo, hi = end * i / points, end * (i + 1) / points
        mbs = [mb for t, mb in samples if lo <= t <= hi]
        out.append(f"{hi:.0f}s:{max(mbs):.0f}" if mbs else f"{hi:.0f}s:-")
    return " ".join(out)


def _report(tool: str, audio_s: float, r: Timings, limit_mb: float | None) -> None:
    wall = r["transcribe_s"] + r.get("write_s", 0.0)
    verdict = "" if limit_mb is None else (" PASS" if r["peak_rss_mb"] < limit_mb else " FAIL")
    print(
        f"| {tool} | {audio_s:.0f} | {r['peak_rss_mb']:.0f}{verdict} | {wall:.1f} | {audio_s / wall:.1f} | "
        f"{r['startup_s']:.2f} | {r['process_s']:.1f} | {r.get('notes', '-')} | {r['other_cpu_pct']:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    audio = test_recording(args.duration)
    audio_s = wav_duration_s(audio)
    runs: dict[str, Timings] = {}
    for kind in ("midiscribe", "basic-pitch") if args.basic_pitch else ("midiscribe",):
        with tempfile.TemporaryDirectory(prefix="bench-mem-") as out:
            runs[kind] = run_child(kind, audio, Path(out))
    limit = f"{args.limit_mb:.0f}"
    print(f"| tool | audio s | peak RSS MB (< {limit}) | wall s | RTF | startup s | process s | notes | other CPU % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, r in runs.items():
        _report(kind, audio_s, r, args.limit_mb if kind == "midiscribe" else None)
    for kind, r in runs.items():
        print(f"{kind} max RSS per slice of the run (end of slice: MB): {_trace(r)}")
    return 0 if runs["midiscribe"]["peak_rss_mb"] < args.limit_mb else 1


if __name__ == "__main__":
    raise SystemExit(main())
