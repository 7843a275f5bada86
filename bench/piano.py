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
            t0, c0 = time.perf_counter(), time.process_time()
            for it in items:
                write_midi(model.transcribe(str(it["audio"])), pred / f"{_stem(it)}.mid")
            secs = time.perf_counter() - t0
            print(f"{config}: {secs:.0f} s wall, {time.process_time() - c0:.0f} s cpu", flush=True)
            res = _eval(pred, manifest, EVAL_DIR)
            rows.append((config, secs, res))
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


def _piano_parts() -> list[tuple[np.ndarray, np.ndarray]]:
    """Each piano item's samples at 44.1 kHz and its reference notes (onset_s, offset_s, pitch)."""
    import csv

    from midiscribe.core.audio import load_audio

    parts = []
    for it in piano_items():
        with open(str(it["reference_csv"])) as f:
            ref = np.array(
                [(float(r["onset_s"]), float(r["offset_s"]), int(r["midi_pitch"])) for r in csv.DictReader(f)]
            )
        parts.append((load_audio(str(it["audio"]), sample_rate=44_100), ref.reshape(-1, 3)))
    return parts


def piano_recording(seconds: float) -> tuple[Path, Path]:
    """The solo piano eval recordings joined and repeated to ``seconds`` s (44.1 kHz 16-bit WAV),
    and its reference notes (``.ref.npy``: onset_s, offset_s, pitch), cut at the end."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"piano_{seconds:g}s.wav"
    ref_path = path.with_suffix(".ref.npy")
    if path.exists() and ref_path.exists():
        return path, ref_path
    n = round(seconds * 44_100)
    audio, refs, at = [], [], 0
    parts = _piano_parts()
    while at < n:
        for samples, ref in parts:
            audio.append(samples)
            refs.append(ref + np.array([at / 44_100, at / 44_100, 0]))
            at += samples.size
    pcm = (np.clip(np.concatenate(audio)[:n], -1, 1) * 32767).round().astype("<i2")
    ref_all = np.concatenate(refs)
    ref_all = ref_all[ref_all[:, 0] < seconds - 0.05]
    ref_all[:, 1] = np.minimum(ref_all[:, 1], seconds)
    np.save(ref_path, ref_all)
    tmp = path.with_suffix(".part")
    with wave.open(str(tmp), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(44_100)
        f.writeframes(pcm.tobytes())
    tmp.replace(path)
    return path, ref_path


def _f1(tr: Any, ref: np.ndarray) -> tuple[float, float]:
    import mir_eval

    est_iv = np.array([(n.start_s, max(n.end_s, n.start_s + 1e-3)) for n in tr.notes]).reshape(-1, 2)
    est_hz = mir_eval.util.midi_to_hz(np.array([n.pitch for n in tr.notes], dtype=float))
    ref_hz = mir_eval.util.midi_to_hz(ref[:, 2])
    out = []
    for ratio in (None, 0.2):
        _, _, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ref[:, :2], ref_hz, est_iv, est_hz, onset_tolerance=0.05, offset_ratio=ratio, offset_min_tolerance=0.05
        )
        out.append(float(f))
    return out[0], out[1]


def child(config: str, audio: str, ref: str, log_path: str) -> None:
    """One measured run, in this process: a JSON line on stdout, progress lines in ``log_path``."""
    import psutil

    proc = psutil.Process()
    c0, t0 = time.process_time(), time.perf_counter()
    model = build(config)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    c1, t1 = time.process_time(), time.perf_counter()
    log = open(log_path, "w")  # noqa: SIM115

    def progress(done_s: float, total_s: float | None) -> None:
        rss = proc.memory_info().rss / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cpu, wall = time.process_time() - c1, time.perf_counter() - t1
        log.write(f"{done_s:.1f} s audio: cpu {cpu:.1f} s, wall {wall:.1f} s, rss {rss:.0f} MB, peak {peak:.0f} MB\n")
        log.flush()

    if config == "stock" or config == "general":
        tr = model.transcribe(audio)
    else:
        tr = model.transcribe(audio, progress=progress)
    run_s, run_cpu = time.perf_counter() - t1, time.process_time() - c1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    f1, f1o = _f1(tr, np.load(ref))
    print(json.dumps({"config": config, "load_s": load_s, "load_cpu_s": load_cpu, "run_s": run_s,
                      "run_cpu_s": run_cpu, "audio_s": tr.duration_s, "notes": len(tr.notes),
                      "pedals": len(tr.pedals), "peak_rss_mb": peak, "f1": f1, "f1_offset": f1o}))  # fmt: skip


def speed(configs: list[str], seconds: list[float]) -> None:
    print(
        "| config | audio s | cold start s (cpu) | transcribe wall s | transcribe cpu s | cpu s per audio s "
        "| peak RSS MB | onset F1 | w/ offset F1 | notes | pedals |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for secs in seconds:
        audio, ref = piano_recording(secs)
        for config in configs:
            log = CACHE_DIR / f"progress_{config}_{secs:g}.log"
            cmd = [sys.executable, __file__, "child", config, str(audio), str(ref), str(log)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {config} | {secs:g} | {r['load_s']:.1f} ({r['load_cpu_s']:.1f}) | {r['run_s']:.0f} "
                f"| {r['run_cpu_s']:.0f} | {r['run_cpu_s'] / r['audio_s']:.2f} | {r['peak_rss_mb']:.0f} "
                f"| {r['f1']:.3f} | {r['f1_offset']:.3f} | {r['notes']} | {r['pedals']} |",
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
    c.add_argument("ref")
    c.add_argument("log")
    args = p.parse_args(argv)
    if args.cmd == "accuracy":
        accuracy(args.configs.split(","), args.out_dir)
    elif args.cmd == "speed":
        speed(args.configs.split(","), [float(x) for x in args.seconds.split(",")])
    else:
        child(args.config, args.audio, args.ref, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
