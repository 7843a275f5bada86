"""Note accuracy and speed of the selectable models on the eval set, side by side in one run.

For each model asked (default: ``mono`` and ``general``, i.e. basic-pitch) and each eval item of the
chosen sources (default: the monophonic ones, ``bach10_stems`` and ``filosax``), transcribes the
item through the registry (``get_model(name).transcribe``), writes ``<stem>.mid`` with
``write_midi`` into ``OUT/<model>/`` and scores that directory with the eval set's own ``eval.py``
(a subprocess, exactly as a user would run it, on a manifest of just those items). Prints micro F1
without and with offsets per source, the time per audio second (x real time) and the median onset
error of matched notes.

``--melody-json`` overrides the mono model's ``MelodyOptions`` (for tuning); with ``--cached`` the pitch
tracks are cached under ``bench/.cache/mono-tracks/`` so a sweep costs no model runs.

Run::

    .venv/bin/python bench/models.py                       # mono vs general on the mono items
    .venv/bin/python bench/models.py --models mono --melody-json '{"rise_db": 8}'
    .venv/bin/python bench/models.py --models piano,general --sources maestro,synth
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _audio import CACHE_DIR, EVAL_DIR, MANIFEST, manifest_items

MONO_SOURCES = ("bach10_stems", "filosax")
TRACKS_DIR = CACHE_DIR / "mono-tracks"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--models", default="mono,general", help="comma-separated registry names")
    p.add_argument("--sources", default=",".join(MONO_SOURCES), help="comma-separated eval sources")
    p.add_argument("--out-dir", type=Path, help="where OUT/<model>/<stem>.mid go (default: a temporary directory)")
    p.add_argument("--melody-json", default="{}", metavar="JSON", help="MelodyOptions fields for the mono model")
    p.add_argument("--items", action="store_true", help="also print eval.py's per-item table")
    p.add_argument(
        "--cached", action="store_true", help="mono: reuse (or make) cached pitch tracks; speed is then not measured"
    )
    return p.parse_args(argv)


def _stem(item: dict[str, Any]) -> str:
    return Path(str(item["audio"])).stem


def _mono_notes(item: dict[str, Any], melody_json: str) -> Any:
    """The mono model's transcription, from a cached pitch track when there is one."""
    from midiscribe.core.melody import F0Track, MelodyOptions, notes_from_track
    from midiscribe.core.registry import get_model
    from midiscribe.core.results import NoteOptions, Transcription

    TRACKS_DIR.mkdir(parents=True, exist_ok=True)
    cached = TRACKS_DIR / f"{_stem(item)}.npz"
    if cached.exists():
        data = np.load(cached)
        track = F0Track(data["pitch"], data["voicing"], data["power"], float(data["period"]))
        duration = float(data["duration"])
    else:
        from midiscribe.core.audio import load_audio

        model: Any = get_model("mono")
        samples = load_audio(str(item["audio"]))
        track = model.track(samples)
        duration = samples.size / 22_050
        np.savez(
            cached,
            pitch=track.pitch_midi,
            voicing=track.voicing,
            power=track.power,
            period=track.frame_period_s,
            duration=duration,
        )
    options = NoteOptions()
    notes = notes_from_track(track, MelodyOptions(**json.loads(melody_json)), options)
    return Transcription(notes=notes, duration_s=duration, frame_period_s=track.frame_period_s, options=options)


def predict(name: str, items: list[dict[str, Any]], out: Path, melody_json: str, cached: bool) -> tuple[float, float]:
    """Writes each item's MIDI; (seconds spent transcribing, seconds of audio)."""
    from midiscribe.core.registry import get_model
    from midiscribe.formats.midi import write_midi

    out.mkdir(parents=True, exist_ok=True)
    spent = audio = 0.0
    model = get_model(name)
    for item in items:
        t0 = time.perf_counter()
        result = _mono_notes(item, melody_json) if name == "mono" and cached else model.transcribe(str(item["audio"]))
        spent += time.perf_counter() - t0
        audio += float(item.get("duration_s") or result.duration_s)
        write_midi(result, out / f"{_stem(item)}.mid")
    return spent, audio


def score(items: list[dict[str, Any]], pred_dir: Path, show_items: bool) -> dict[str, Any]:
    """eval.py's summary (and rows) for these items, run as a subprocess on a manifest of them."""
    manifest = pred_dir / "manifest.json"
    manifest.write_text(json.dumps(items))  # absolute paths: eval.py joins them to the manifest's folder
    result_json = pred_dir / "eval.json"
    run = subprocess.run(
        [
            sys.executable,
            str(EVAL_DIR / "eval.py"),
            "--pred-dir",
            str(pred_dir),
            "--manifest",
            str(manifest),
            "--json",
            str(result_json),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if show_items:
        print(run.stdout)
    data: dict[str, Any] = json.loads(result_json.read_text())
    return data


def onset_errors_ms(items: list[dict[str, Any]], pred_dir: Path) -> float | None:
    """Median (estimate - reference) onset of matched notes, in ms."""
    import mir_eval
    import pretty_midi

    errors: list[float] = []
    for item in items:
        ref = np.loadtxt(str(item["reference_csv"]), delimiter=",", skiprows=1, usecols=(0, 1, 2), ndmin=2)
        pm = pretty_midi.PrettyMIDI(str(pred_dir / f"{_stem(item)}.mid"))
        est = [(n.start, max(n.end, n.start + 1e-3), n.pitch) for i in pm.instruments for n in i.notes]
        if not est or not len(ref):
            continue
        e = np.array(est)
        pairs = mir_eval.transcription.match_notes(
            ref[:, :2],
            mir_eval.util.midi_to_hz(ref[:, 2]),
            e[:, :2],
            mir_eval.util.midi_to_hz(e[:, 2]),
            offset_ratio=None,
        )
        errors += [1000 * (e[j, 0] - ref[i, 0]) for i, j in pairs]
    return statistics.median(errors) if errors else None


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    sources = set(args.sources.split(","))
    items = [it for it in manifest_items(MANIFEST) if it["source"] in sources]
    if not items:
        sys.exit(f"no eval items of {sorted(sources)} under {EVAL_DIR}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out_dir or Path(tmp)
        print(
            "| model | source | items | F1 no offset (micro) | F1 with offset (micro) | x real time | onset error ms |"
        )
        print("|---|---|---|---|---|---|---|")
        for name in args.models.split(","):
            spent, audio = predict(name, items, out / name, args.melody_json, args.cached)
            result = score(items, out / name, args.items)
            bias = onset_errors_ms(items, out / name)
            for src, s in result["summary"].items():
                speed = f"{audio / spent:.1f}" if src == "ALL" and spent and not args.cached else ""
                late = f"{bias:+.1f}" if bias is not None and src == "ALL" else ""
                print(
                    f"| {name} | {src} | {s['n_items']} | {s['F1_no_offset_micro']:.3f} | "
                    f"{s['F1_with_offset_micro']:.3f} | {speed} | {late} |"
                )


if __name__ == "__main__":
    main()
