"""Note accuracy and speed of the selectable models on the eval set, side by side in one run.

For each model asked (default: ``mono`` and ``general``, i.e. basic-pitch) and each eval item of the
chosen sources (default: the monophonic ones, ``bach10_stems`` and ``filosax``), transcribes the
item through the registry (``get_model(name).transcribe``), writes ``<stem>.mid`` with
``write_midi`` into ``OUT/<model>/`` and scores that directory with the eval set's own ``eval.py``
(a subprocess, exactly as a user would run it, on a manifest of just those items). Prints micro F1
without and with offsets per source, the time per audio second (x real time) and the median onset
error of matched notes.

``--mono-json`` overrides the mono model's ``MonoOptions`` and ``--option-json`` the note options (for
tuning); with ``--cached`` the mono model's pitch tracks and basic-pitch outputs are cached under
``bench/.cache/mono-tracks/`` so a sweep costs no model runs (speed is then not measured).

Run::

    .venv/bin/python bench/models.py                       # mono vs general on the mono items
    .venv/bin/python bench/models.py --models mono --cached --option-json '{"onset_threshold": 0.5}'
    .venv/bin/python bench/models.py --models piano,general --sources maestro,synth
    .venv/bin/python bench/models.py --speed 60,600        # cold start, x real time, peak RSS
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
    p.add_argument("--mono-json", default="{}", metavar="JSON", help="MonoOptions fields for the mono model")
    p.add_argument("--option-json", default="{}", metavar="JSON", help="NoteOptions fields, for every model")
    p.add_argument("--items", action="store_true", help="also print eval.py's per-item table")
    p.add_argument(
        "--speed",
        default="",
        metavar="SECONDS",
        help="instead: time each model in a fresh process on recordings of these lengths, e.g. 60,600 "
        "(cold start, x real time, peak RSS)",
    )
    p.add_argument(
        "--cached", action="store_true", help="mono: reuse (or make) cached pitch tracks; speed is then not measured"
    )
    return p.parse_args(argv)


def _stem(item: dict[str, Any]) -> str:
    return Path(str(item["audio"])).stem


def _mono_notes(item: dict[str, Any], mono_json: str, options: Any) -> Any:
    """The mono model's notes from cached model outputs and pitch track (made on first use)."""
    from midiscribe.core.melody import F0Track, MonoOptions, monophonic
    from midiscribe.core.notes import notes_from_outputs
    from midiscribe.core.outputs import ModelOutputs
    from midiscribe.core.registry import get_model
    from midiscribe.core.results import Transcription
    from midiscribe.core.transcribe import transcribe

    TRACKS_DIR.mkdir(parents=True, exist_ok=True)
    track_file, outputs_file = TRACKS_DIR / f"{_stem(item)}.npz", TRACKS_DIR / f"{_stem(item)}.outputs.npz"
    if not track_file.exists():
        from midiscribe.core.audio import load_audio

        model: Any = get_model("mono")
        samples = load_audio(str(item["audio"]))
        track = model.track(samples)
        np.savez(
            track_file,
            pitch=track.pitch_midi,
            voicing=track.voicing,
            power=track.power,
            period=track.frame_period_s,
            duration=samples.size / 22_050,
        )
    if not outputs_file.exists():
        result = transcribe(str(item["audio"]))
        assert result.outputs is not None
        result.outputs.save(outputs_file)
    data = np.load(track_file)
    track = F0Track(data["pitch"], data["voicing"], data["power"], float(data["period"]))
    outputs = ModelOutputs.load(outputs_file)
    notes = monophonic(notes_from_outputs(outputs, options), track, options, MonoOptions(**json.loads(mono_json)))
    return Transcription(
        notes=notes, duration_s=float(data["duration"]), frame_period_s=track.frame_period_s, options=options
    )


def predict(
    name: str, items: list[dict[str, Any]], out: Path, mono_json: str, options_json: str, cached: bool
) -> tuple[float, float]:
    """Writes each item's MIDI; (seconds spent transcribing, seconds of audio)."""
    from midiscribe.core.registry import get_model
    from midiscribe.core.results import NoteOptions
    from midiscribe.formats.midi import write_midi

    out.mkdir(parents=True, exist_ok=True)
    spent = audio = 0.0
    model = get_model(name)
    options = NoteOptions(**json.loads(options_json))
    for item in items:
        t0 = time.perf_counter()
        if name == "mono" and cached:
            result = _mono_notes(item, mono_json, options)
        else:
            result = model.transcribe(str(item["audio"]), options)
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


# One measured run in a fresh interpreter: import and load (cold start), transcribe, peak RSS.
_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from midiscribe.core.registry import get_model
model = get_model(sys.argv[1])
loaded = time.perf_counter() - t0
t1 = time.perf_counter()
result = model.transcribe(sys.argv[2])
spent = time.perf_counter() - t1
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"load_s": loaded, "transcribe_s": spent, "audio_s": result.duration_s,
                  "notes": len(result.notes), "peak_rss_mb": peak_mb}))
"""


def measure_speed(models: list[str], lengths: list[float]) -> None:
    from _audio import test_recording

    print("| model | audio s | cold start s | transcribe s | x real time | peak RSS MB | notes |")
    print("|---|---|---|---|---|---|---|")
    for seconds in lengths:
        path = test_recording(seconds)
        for name in models:
            run = subprocess.run(
                [sys.executable, "-c", _CHILD, name, str(path)], capture_output=True, text=True, check=True
            )
            r = json.loads(run.stdout.strip().splitlines()[-1])
            print(
                f"| {name} | {r['audio_s']:.0f} | {r['load_s']:.1f} | {r['transcribe_s']:.1f} | "
                f"{r['audio_s'] / r['transcribe_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['notes']} |",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.speed:
        measure_speed(args.models.split(","), [float(x) for x in args.speed.split(",")])
        return
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
            spent, audio = predict(name, items, out / name, args.mono_json, args.option_json, args.cached)
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
