"""Beat tracking on the eval set's scored renders, scored on the grid read back from the MIDI file we write.

For each item of ``../shared/eval/beats.json``: transcribe (default options; model outputs cached in
``bench/.cache/eval-outputs/``, as ``_eval_outputs.py`` does), ``analyse`` (beats, meter, key), write the
MIDI file with ``write_midi``, read it back with pretty_midi (``get_beats``, ``get_downbeats``) and score as
``../shared/eval/README.md`` says: both lists cut at ``end_s``, ``mir_eval.beat.trim_beats`` (drops the first
5 s), beat F-measure (70 ms), AMLt (``continuity``), downbeat F-measure of the bar lines; tempo = the median
inter-beat interval after 5 s, right within 4% of ``beat_bpm`` (Acc1), or of x2, x3, x1/2, x1/3 (Acc2).

With ``--synthetic``: rendered tones (a I-IV-V-I progression: bass on each downbeat, the chord on
every beat, an eighth-note line on top) at tempos from 60 to 200 bpm, accelerating, slowing down
and in 3/4, scored the same way on the MIDI file: how the tracker does away from the eval set's
80-126 bpm.

With ``--speed S``: the cost of beat tracking next to the transcription of an S-second recording
(concatenated eval recordings, ``_audio.py``), in one process: the wall time of ``track_beats``
against that of ``transcribe``, then the peak memory ``track_beats`` allocates (tracemalloc, a second run).

    .venv/bin/python bench/beats.py [--json out.json]
    .venv/bin/python bench/beats.py --synthetic
    .venv/bin/python bench/beats.py --speed 600
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from _audio import EVAL_DIR, MANIFEST, manifest_items, test_recording
from _eval_outputs import OUTPUTS_DIR, stem

BEATS_JSON = EVAL_DIR / "beats.json"
MULTIPLES = (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0)


def item_outputs(item: dict[str, Any]) -> Any:
    """The item's model outputs, from the shared cache or computed and cached."""
    from midiscribe import ModelOutputs, transcribe

    OUTPUTS_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUTS_DIR / f"{item['source']}--{stem(item)}.npz"
    if not path.exists():
        outputs = transcribe(str(item["audio"])).outputs
        assert outputs is not None
        outputs.save(path)
    return ModelOutputs.load(path)


def score(midi_path: Path, ref: dict[str, Any]) -> dict[str, Any]:
    import mir_eval
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(midi_path))
    end = float(ref["end_s"])
    est_b = mir_eval.beat.trim_beats(np.array([b for b in pm.get_beats() if b < end]))
    est_d = mir_eval.beat.trim_beats(np.array([b for b in pm.get_downbeats() if b < end]))
    ref_b = mir_eval.beat.trim_beats(np.array(ref["beats"]))
    ref_d = mir_eval.beat.trim_beats(np.array(ref["downbeats"]))
    bpm = 60.0 / float(np.median(np.diff(est_b))) if est_b.size > 1 else float("nan")
    ratio = bpm / float(ref["beat_bpm"])
    return {
        "beat_f": float(mir_eval.beat.f_measure(ref_b, est_b)),
        "amlt": float(mir_eval.beat.continuity(ref_b, est_b)[3]),
        "downbeat_f": float(mir_eval.beat.f_measure(ref_d, est_d)),
        "tempo_bpm": bpm,
        "ref_bpm": float(ref["beat_bpm"]),
        "acc1": bool(abs(ratio - 1.0) <= 0.04),
        "acc2": bool(any(abs(ratio / m - 1.0) <= 0.04 for m in MULTIPLES)),
    }


def run_items() -> list[dict[str, Any]]:
    from midiscribe import retune
    from midiscribe.formats.midi import write_midi
    from midiscribe.music.analysis import analyse

    refs = json.loads(BEATS_JSON.read_text())["items"]
    by_id = {str(i["id"]): i for i in manifest_items(MANIFEST)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-beats-") as tmp:
        for item_id, ref in refs.items():
            item = by_id[item_id]
            tr = analyse(retune(item_outputs(item)))
            path = Path(tmp) / f"{stem(item)}.mid"
            write_midi(tr, path)
            assert tr.grid is not None
            row = {"item": item_id, "ts": str(tr.grid.time_signature), "ref_ts": ref["time_signature"]}
            rows.append(row | score(path, ref))
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'item':44s} {'beat F':>7s} {'AMLt':>6s} {'down F':>7s} {'bpm':>7s} {'ref':>6s} tempo   meter")
    for r in rows:
        ok = "ok" if r["acc1"] else ("ok x" if r["acc2"] else "wrong")
        print(
            f"{r['item']:44s} {r['beat_f']:7.3f} {r['amlt']:6.3f} {r['downbeat_f']:7.3f} "
            f"{r['tempo_bpm']:7.1f} {r['ref_bpm']:6.1f} {ok:7s} {r['ts']} ({r['ref_ts']})"
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("beat_f", "amlt", "downbeat_f", "acc1", "acc2")}
    print(
        f"{'MEAN (' + str(len(rows)) + ' items)':44s} {mean['beat_f']:7.3f} {mean['amlt']:6.3f} "
        f"{mean['downbeat_f']:7.3f}   tempo Acc1 {mean['acc1']:.0%}, Acc2 {mean['acc2']:.0%}"
    )


CHORDS = [(48, (60, 64, 67)), (53, (60, 65, 69)), (55, (59, 62, 67)), (48, (60, 64, 67))]


def _tones(events: list[tuple[float, float, int]], total_s: float, sr: int = 22_050) -> Any:
    """Plucked harmonic tones (start_s, length_s, pitch) mixed into ``total_s`` seconds."""
    out = np.zeros(int(total_s * sr), dtype=np.float32)
    for start, length, pitch in events:
        t = np.arange(int(length * sr)) / sr
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        wave = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(4))
        note = (0.3 * np.exp(-2.0 * t) * np.minimum(1.0, t / 0.005) * wave).astype(np.float32)
        i = round(start * sr)
        out[i : i + note.size] += note[: max(0, out.size - i)]
    return out


def _song(beats: list[float], per_bar: int) -> list[tuple[float, float, int]]:
    events = []
    for i, (t, nxt) in enumerate(itertools.pairwise(beats)):
        bass, chord = CHORDS[(i // per_bar) % len(CHORDS)]
        if i % per_bar == 0:
            events.append((t, (nxt - t) * per_bar * 0.9, bass - 12))
        events += [(t, (nxt - t) * 0.8, p) for p in chord]
        events.append((t + (nxt - t) / 2, (nxt - t) * 0.4, chord[-1] + 12))
    return events


def _curve(bpm0: float, bpm1: float, n: int) -> list[float]:
    beats = [0.5]
    for i in range(n - 1):
        beats.append(beats[-1] + 60.0 / (bpm0 + (bpm1 - bpm0) * i / (n - 1)))
    return beats


def run_synthetic() -> list[dict[str, Any]]:
    from midiscribe import transcribe
    from midiscribe.formats.midi import write_midi
    from midiscribe.music.analysis import analyse

    cases = [(f"{b} bpm 4/4", _curve(b, b, int(b / 2.5)), 4) for b in (60, 80, 100, 130, 160, 200)]
    cases += [("80 -> 130 bpm", _curve(80, 130, 60), 4), ("140 -> 90 bpm", _curve(140, 90, 60), 4)]
    cases += [("90 bpm 3/4", _curve(90, 90, 36), 3), ("150 bpm 3/4", _curve(150, 150, 60), 3)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-beats-") as tmp:
        for label, beats, per_bar in cases:
            tr = analyse(transcribe(_tones(_song(beats, per_bar), beats[-1] + 1.0), sample_rate=22_050))
            path = Path(tmp) / "synthetic.mid"
            write_midi(tr, path)
            ref = {"beats": beats[:-1], "downbeats": beats[:-1:per_bar], "end_s": beats[-1]}
            ref["beat_bpm"] = 60.0 / float(np.median(np.diff([b for b in beats[:-1] if b >= 5.0])))  # as scored
            assert tr.grid is not None
            rows.append({"item": label, "ts": str(tr.grid.time_signature), "ref_ts": f"{per_bar}/4"} | score(path, ref))
    return rows


def speed(duration_s: float) -> dict[str, float]:
    from midiscribe import transcribe
    from midiscribe.core.model import load_model
    from midiscribe.music.beats import track_beats

    path = test_recording(duration_s)
    model = load_model()
    t0 = time.perf_counter()
    tr = transcribe(str(path), model=model)
    t1 = time.perf_counter()
    assert tr.outputs is not None
    t2 = time.perf_counter()
    grid = track_beats(tr.outputs)
    t3 = time.perf_counter()
    tracemalloc.start()  # a second run for memory: tracing slows every allocation
    track_beats(tr.outputs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = {
        "audio_s": duration_s,
        "transcribe_s": t1 - t0,
        "beats_s": t3 - t2,
        "share": (t3 - t2) / (t1 - t0),
        "beats_peak_mb": peak / 2**20,
        "n_beats": grid.n_beats,
    }
    print(
        f"{duration_s:g} s of audio: transcribe {out['transcribe_s']:.2f} s, beats {out['beats_s']:.3f} s "
        f"(+{out['share']:.1%}), beat tracking peak {out['beats_peak_mb']:.1f} MB traced, {grid.n_beats} beats"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--speed", type=float, metavar="S", help="measure the cost on an S-second recording instead")
    p.add_argument("--synthetic", action="store_true", help="rendered tones at 60-200 bpm instead")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    result: Any = speed(args.speed) if args.speed else run_synthetic() if args.synthetic else run_items()
    if not args.speed:
        print_rows(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
