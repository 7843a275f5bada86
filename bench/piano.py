"""The piano model (issue 10): accuracy beside basic-pitch, speed and memory beside Transkun's own loop.

``accuracy``: transcribes the eval set's solo piano items (maestro, madmom, and the synth items
whose instrument is "piano...": three FluidSynth renders, one of a human performance with pedal)
with each configuration asked for and with basic-pitch (midiscribe's ``general`` model), writes
``<stem>.mid`` and scores each directory with ``../shared/eval/eval.py``::

    nice .venv/bin/python bench/piano.py accuracy --configs stock,fp32-h8,fp32-h12,int8-h12,general

``speed``: one fresh process per run (so the peak RSS is the run's own) on a ``D``-second piano
recording: the piano items above joined and repeated to ``D`` s (44.1 kHz WAV, cached in
``bench/.cache``). Reports load (cold start: import + weights), transcription time, x real time
and peak RSS; the machine is shared, so compare the ratios of runs made together::

    nice .venv/bin/python bench/piano.py speed --seconds 60 --configs stock,int8-h12

Configurations: ``stock`` is Transkun's own ``TransKun.transcribe`` (8 s hop, 8 s of silence each
side, the whole file's samples as one tensor) on our network; ``fp32-hN`` / ``bf16-hN`` / ``int8-hN``
are ``PianoModel`` at that precision and an N-second hop; ``general`` is basic-pitch.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from _audio import CACHE_DIR, EVAL_DIR, manifest_items

PIANO_SOURCES = ("maestro", "madmom")


def piano_items() -> list[dict[str, Any]]:
    """The eval items of solo piano."""
    return [
        it
        for it in manifest_items()
        if it["source"] in PIANO_SOURCES or (it["source"] == "synth" and str(it["instrument"]).startswith("piano"))
    ]


def _stem(item: dict[str, Any]) -> str:
    return Path(str(item["audio"])).stem


class Stock:
    """Transkun's own ``transcribe`` loop (the baseline): whole file in, its default segments."""

    name = "stock"

    def __init__(self) -> None:
        from midiscribe.core import piano_net

        self.net = piano_net.load_network(quantize=False)

    def transcribe(self, path: str) -> Any:
        import torch

        from midiscribe.core.audio import load_audio
        from midiscribe.core.piano import SOFT, SUSTAIN
        from midiscribe.core.results import Note, Pedal, Transcription

        x = load_audio(path, sample_rate=44_100)
        with torch.inference_mode():
            events = self.net.transcribe(torch.from_numpy(x[:, None]))
        notes = tuple(
            Note(e.start, e.end, e.pitch, max(1, e.velocity) / 127) for e in events if e.pitch not in (SUSTAIN, SOFT)
        )
        pedals = tuple(Pedal(e.start, e.end) for e in events if e.pitch == SUSTAIN)
        return Transcription(notes, x.size / 44_100, 1024 / 44_100, pedals=pedals)


def build(config: str) -> Any:
    """A model with ``transcribe(path) -> Transcription`` for a configuration name."""
    if config == "stock":
        return Stock()
    if config == "general":
        from midiscribe.core.registry import GeneralModel

        return GeneralModel()
    kind, _, hop = config.partition("-h")
    from midiscribe.core.piano import PianoModel

    precision = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}[kind]
    model = PianoModel(precision=precision, hop_s=float(hop))  # type: ignore[arg-type]
    model.network()
    return model


def accuracy(configs: list[str], out: Path | None) -> None:
    items = piano_items()
    with tempfile.TemporaryDirectory(prefix="bench-piano-") as tmp:
        root = out or Path(tmp)
        manifest = root / "manifest.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        rel = [dict(it) for it in manifest_items() if any(_stem(it) == _stem(p) for p in items)]
        for it in rel:  # eval.py resolves paths against the manifest's folder
            for key in ("audio", "reference_csv", "reference_mid"):
                it[key] = str(Path(str(it[key])).relative_to(EVAL_DIR))
        manifest.write_text(json.dumps(rel))
        audio_s = sum(float(it["duration_s"]) for it in items)
        print(f"{len(items)} piano items, {audio_s:.1f} s: {', '.join(str(it['id']) for it in items)}")
        rows = []
        for config in configs:
            from midiscribe.formats.midi import write_midi

            pred = root / config
            pred.mkdir(parents=True, exist_ok=True)
            model = build(config)
            t0 = time.perf_counter()
            for it in items:
                write_midi(model.transcribe(str(it["audio"])), pred / f"{_stem(it)}.mid")
            secs = time.perf_counter() - t0
            res = _eval(pred, manifest, EVAL_DIR)
            rows.append((config, secs, res))
            print(f"{config}: {secs:.0f} s", flush=True)
        _print_accuracy(rows)


def _eval(pred: Path, manifest: Path, eval_dir: Path) -> dict[str, Any]:
    out = pred / "eval.json"
    cmd = [sys.executable, str(eval_dir / "eval.py"), "--pred-dir", str(pred), "--manifest", str(manifest)]
    subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _print_accuracy(rows: list[tuple[str, float, dict[str, Any]]]) -> None:
    print("\n| config | time s | source | F1 onset micro | F1 w/ offset micro |")
    print("|---|---|---|---|---|")
    for config, secs, res in rows:
        for source, s in res["summary"].items():
            f1, f1o = s["F1_no_offset_micro"], s["F1_with_offset_micro"]
            print(f"| {config} | {secs:.0f} | {source} | {f1:.3f} | {f1o:.3f} |")
    print("\n| config | item | F1 onset | F1 w/ offset |")
    print("|---|---|---|---|")
    for config, _, res in rows:
        for item in res["items"]:
            print(f"| {config} | {item['id']} | {item['no_offset']['F1']:.3f} | {item['with_offset']['F1']:.3f} |")


def piano_recording(seconds: float) -> Path:
    """The solo piano eval recordings joined and repeated to ``seconds`` s, as 44.1 kHz 16-bit WAV."""
    from midiscribe.core.audio import load_audio

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"piano_{seconds:g}s.wav"
    if path.exists():
        return path
    parts = [load_audio(str(it["audio"]), sample_rate=44_100) for it in piano_items()]
    one = np.concatenate(parts)
    n = round(seconds * 44_100)
    pcm = (np.clip(np.resize(one, n), -1, 1) * 32767).round().astype("<i2")
    tmp = path.with_suffix(".part")
    with wave.open(str(tmp), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(44_100)
        f.writeframes(pcm.tobytes())
    tmp.replace(path)
    return path


def child(config: str, audio: str) -> None:
    """One measured run, in this process: prints a JSON line."""
    t0 = time.perf_counter()
    model = build(config)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    tr = model.transcribe(audio)
    run_s = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"config": config, "load_s": load_s, "run_s": run_s, "audio_s": tr.duration_s,
                      "notes": len(tr.notes), "pedals": len(tr.pedals), "peak_rss_mb": peak}))  # fmt: skip


def speed(configs: list[str], seconds: list[float]) -> None:
    print("| config | audio s | cold start s | transcribe s | x real time | peak RSS MB | notes | pedals |")
    print("|---|---|---|---|---|---|---|---|")
    for secs in seconds:
        audio = piano_recording(secs)
        for config in configs:
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "child", config, str(audio)], capture_output=True, text=True, check=True
            )
            wall = time.perf_counter() - t0
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {config} | {secs:g} | {r['load_s']:.1f} | {r['run_s']:.1f} | {r['audio_s'] / r['run_s']:.2f} "
                f"| {r['peak_rss_mb']:.0f} | {r['notes']} | {r['pedals']} |  (process {wall:.0f} s)",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--configs", default="stock,int8-h12,general")
    a.add_argument("--out-dir", type=Path)
    s = sub.add_parser("speed")
    s.add_argument("--configs", default="stock,int8-h12")
    s.add_argument("--seconds", default="60")
    c = sub.add_parser("child")
    c.add_argument("config")
    c.add_argument("audio")
    args = p.parse_args(argv)
    if args.cmd == "accuracy":
        accuracy(args.configs.split(","), args.out_dir)
    elif args.cmd == "speed":
        speed(args.configs.split(","), [float(x) for x in args.seconds.split(",")])
    else:
        child(args.config, args.audio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
