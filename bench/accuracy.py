"""Note accuracy of midiscribe on the eval set, next to basic-pitch 0.4.0's reference figures.

Transcribes every item of ``../shared/eval/manifest.json`` with ``transcribe()`` (default
``NoteOptions`` unless ``--option-json`` says otherwise), writes ``<stem>.mid`` with
``midiscribe.formats.midi.write_midi``, scores the directory with the set's own
``eval.py`` (mir_eval, onset tolerance 50 ms) and prints, per source and overall, micro F1
without and with offsets beside basic-pitch's published figures, and the median onset error
(estimate - reference, ms) of matched notes: how late the model's onsets land.
``--with-basic-pitch`` also runs basic-pitch 0.4.0 (ONNX) here and scores it the same way.

Run (about a minute; 44 items, 19 min of audio)::

    .venv/bin/python bench/accuracy.py
    .venv/bin/python bench/accuracy.py --option-json '{"onset_threshold": 0.6}' --out-dir /tmp/pred
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

from _audio import EVAL_DIR, MANIFEST, manifest_items

# basic-pitch 0.4.0 (ONNX model, default settings) on this set, micro F1 (no offset, with
# offset), copied from ../shared/eval/README.md, "Reference point" table. The README gives
# no figures for maestro, madmom and slakh (one short item each).
BASIC_PITCH_REFERENCE: dict[str, tuple[float, float]] = {
    "bach10": (0.686, 0.527),
    "bach10_stems": (0.805, 0.738),
    "guitarset": (0.710, 0.469),
    "filosax": (0.704, 0.630),
    "synth": (0.805, 0.464),
    "synth_slow_attack": (0.286, 0.101),
    "ALL": (0.746, 0.540),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--out-dir", type=Path, help="where the .mid files go (default: a temporary directory)")
    p.add_argument(
        "--option-json",
        default="{}",
        metavar="JSON",
        help="NoteOptions fields, e.g. '{\"onset_threshold\":0.5}'",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write eval.py's full JSON here")
    p.add_argument("--with-basic-pitch", action="store_true", help="also run and score basic-pitch 0.4.0 (ONNX)")
    p.add_argument("--items", action="store_true", help="also print eval.py's per-item table")
    return p.parse_args(argv)


def _eval_module() -> ModuleType:
    """The eval set's own eval.py, so references and MIDI load exactly as it scores them."""
    spec = importlib.util.spec_from_file_location("_shared_eval", EVAL_DIR / "eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stem(item: dict[str, Any]) -> str:
    return Path(str(item["audio"])).stem


def predict_midiscribe(items: list[dict[str, Any]], out_dir: Path, options_json: str) -> float:
    from midiscribe import NoteOptions, transcribe
    from midiscribe.formats.midi import write_midi

    options = NoteOptions(**json.loads(options_json))
    t0 = time.perf_counter()
    for item in items:
        write_midi(transcribe(str(item["audio"]), options), out_dir / f"{_stem(item)}.mid")
    return time.perf_counter() - t0


def predict_basic_pitch(items: list[dict[str, Any]], out_dir: Path) -> float:
    import contextlib
    import io
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # basic_pitch's import warns for each missing runtime
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model, predict

    model = Model(ICASSP_2022_MODEL_PATH.parent / "nmp.onnx")
    t0 = time.perf_counter()
    for item in items:
        with contextlib.redirect_stdout(io.StringIO()):  # predict() prints while it works
            _, midi, _ = predict(str(item["audio"]), model)
        midi.write(str(out_dir / f"{_stem(item)}.mid"))
    return time.perf_counter() - t0


def run_eval(pred_dir: Path, json_path: Path, show_items: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(EVAL_DIR / "eval.py"), "--pred-dir", str(pred_dir), "--json", str(json_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    if show_items:
        print(done.stdout)
    result: dict[str, Any] = json.loads(json_path.read_text())
    return result


def onset_errors_ms(items: list[dict[str, Any]], pred_dir: Path, ev: ModuleType) -> dict[str, list[float]]:
    """Per source (and ALL), est - ref onset in ms of notes matched at 50 ms / 50 cents, no offsets."""
    import mir_eval

    errors: dict[str, list[float]] = defaultdict(list)
    for item in items:
        pred = pred_dir / f"{_stem(item)}.mid"
        if not pred.exists():
            continue
        ref_iv, ref_p = ev.load_ref_csv(str(item["reference_csv"]))
        est_iv, est_p = ev.load_pred_midi(str(pred))
        if len(ref_p) == 0 or len(est_p) == 0:
            continue
        pairs = mir_eval.transcription.match_notes(
            ref_iv,
            mir_eval.util.midi_to_hz(ref_p),
            est_iv,
            mir_eval.util.midi_to_hz(est_p),
            onset_tolerance=0.05,
            pitch_tolerance=50.0,
            offset_ratio=None,
        )
        diffs = [1000.0 * (est_iv[e, 0] - ref_iv[r, 0]) for r, e in pairs]
        errors[str(item["source"])] += diffs
        errors["ALL"] += diffs
    return errors


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):+6.1f} ({len(values)})" if values else "-"


def print_table(
    summary: dict[str, Any],
    errs: dict[str, list[float]],
    bp: tuple[dict[str, Any], dict[str, list[float]]] | None,
) -> None:
    head = (
        "| source | items | ref notes | F1 onset | bp ref | diff | F1 w/ offset | bp ref | diff "
        "| median onset err ms (n) |"
    )
    if bp:
        head += " bp live F1 onset / w/ off | bp live median onset err ms |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for source, s in summary.items():
        cells = [source, str(s["n_items"]), str(s["n_ref_notes"])]
        for k, key in enumerate(("F1_no_offset_micro", "F1_with_offset_micro")):
            ours = s[key]
            cells.append(f"{ours:.3f}")
            if source in BASIC_PITCH_REFERENCE:
                ref = BASIC_PITCH_REFERENCE[source][k]
                cells += [f"{ref:.3f}", f"{ours - ref:+.3f}"]
            else:
                cells += ["n/a", ""]
        cells.append(_median(errs.get(source, [])))
        if bp:
            b = bp[0][source]
            cells += [
                f"{b['F1_no_offset_micro']:.3f} / {b['F1_with_offset_micro']:.3f}",
                _median(bp[1].get(source, [])),
            ]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    items = manifest_items(MANIFEST)
    ev = _eval_module()
    with tempfile.TemporaryDirectory(prefix="bench-acc-") as tmp:
        out_dir = args.out_dir or Path(tmp) / "midiscribe"
        out_dir.mkdir(parents=True, exist_ok=True)
        secs = predict_midiscribe(items, out_dir, args.option_json)
        audio_s = sum(float(it["duration_s"]) for it in items)
        print(f"midiscribe: {len(items)} items, {audio_s:.0f} s of audio in {secs:.1f} s")
        print(f"options: {args.option_json}")
        result = run_eval(out_dir, args.json or Path(tmp) / "eval.json", args.items)
        errs = onset_errors_ms(items, out_dir, ev)
        bp = None
        if args.with_basic_pitch:
            bp_dir = Path(tmp) / "basic-pitch"
            bp_dir.mkdir()
            bp_secs = predict_basic_pitch(items, bp_dir)
            print(f"basic-pitch 0.4.0 (onnx): same items in {bp_secs:.1f} s")
            bp_eval = run_eval(bp_dir, Path(tmp) / "bp.json", False)
            bp = (bp_eval["summary"], onset_errors_ms(items, bp_dir, ev))
    print()
    print_table(result["summary"], errs, bp)
    missing = result["summary"]["ALL"]["missing_predictions"]
    if missing:
        print(f"\n{missing} predictions missing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
