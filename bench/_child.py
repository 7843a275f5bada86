"""Run one measured job in a fresh Python process and collect what it reports.

``run_child(kind, audio, out_dir)`` starts ``python bench/_child.py KIND AUDIO OUT_DIR RESULT``;
the child times its own phases and writes them, with its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``, which counts onnxruntime's threads), to ``RESULT`` as
JSON. The parent adds the process wall time (interpreter start to exit) and, from polling
the child with psutil every 50 ms, the RSS at a few moments, to show whether memory grows
with the length of the recording.

Kinds:

- ``midiscribe``: ``load_model()``, then ``transcribe(path)`` and ``write_midi``.
- ``basic-pitch``: ``basic_pitch.inference.Model(nmp.onnx)``, then ``predict(path, model)``
  and ``PrettyMIDI.write``.
- ``inference``: midiscribe's model alone on the same windows: ``load_audio``,
  ``frames.windows``, ``model.run`` in batches of ``BATCH_WINDOWS``; no notes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("midiscribe", "basic-pitch", "inference")
Timings = dict[str, Any]


def _timed(timings: Timings, key: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    value = fn()
    timings[key] = time.perf_counter() - t0
    return value


def _midiscribe(audio: str, out_dir: Path, t: Timings) -> None:
    from midiscribe import retune, transcribe
    from midiscribe.core.model import load_model
    from midiscribe.formats.midi import write_midi

    model = _timed(t, "load_s", load_model)
    t["model"] = f"{type(model).__name__} {getattr(model, 'precision', 'fp32')}"
    result = _timed(t, "transcribe_s", lambda: transcribe(audio, model=model))
    _timed(t, "write_s", lambda: write_midi(result, out_dir / (Path(audio).stem + ".mid")))
    t["notes"] = len(result.notes)
    # Not part of the end-to-end time: note creation alone, again on the kept outputs (the split).
    _timed(t, "notes_s", lambda: retune(result.outputs, result.options))


def _basic_pitch(audio: str, out_dir: Path, t: Timings) -> None:
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model, predict

    model = _timed(t, "load_s", lambda: Model(ICASSP_2022_MODEL_PATH.parent / "nmp.onnx"))
    _, midi, events = _timed(t, "transcribe_s", lambda: predict(audio, model))
    _timed(t, "write_s", lambda: midi.write(str(out_dir / (Path(audio).stem + ".mid"))))
    t["notes"] = len(events)


def _inference(audio: str, out_dir: Path, t: Timings) -> None:
    import numpy as np

    from midiscribe.core import frames
    from midiscribe.core.audio import load_audio
    from midiscribe.core.model import load_model
    from midiscribe.core.transcribe import batch_windows

    model = _timed(t, "load_s", load_model)
    t["model"] = f"{type(model).__name__} {getattr(model, 'precision', 'fp32')}"
    size = batch_windows(model)
    samples = _timed(t, "decode_s", lambda: load_audio(audio))
    step = frames.SAMPLE_RATE * 10  # chunks like the streaming decoder's, so windowing costs the same

    def run() -> int:
        n = 0
        batch: list[Any] = []
        for window in frames.windows(samples[i : i + step] for i in range(0, samples.size, step)):
            batch.append(window)
            if len(batch) == size:
                model.run(np.stack(batch))
                n += len(batch)
                batch = []
        if batch:
            model.run(np.stack(batch))
            n += len(batch)
        return n

    t["windows"] = _timed(t, "infer_s", run)
    t["transcribe_s"] = t["decode_s"] + t["infer_s"]


def child_main(argv: list[str]) -> None:
    kind, audio, out_dir, result = argv
    timings: Timings = {"kind": kind}
    t0 = time.perf_counter()
    job = {"midiscribe": _midiscribe, "basic-pitch": _basic_pitch, "inference": _inference}[kind]
    job(audio, Path(out_dir), timings)
    timings["in_process_s"] = time.perf_counter() - t0
    timings["startup_s"] = timings["in_process_s"] - timings["transcribe_s"] - timings.get("write_s", 0.0)
    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    Path(result).write_text(json.dumps(timings))


def _poll_rss(pid: int, samples: list[tuple[float, float]], stop: threading.Event) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
        t0 = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20))
            stop.wait(0.05)
    except psutil.Error:  # the child has exited
        return


MAX_WAIT_S = 180.0  # bench/speed.py --max-wait-s sets it


def wait_for_quiet(max_busy_pct: float = 30.0, max_wait_s: float | None = None) -> float:
    """Wait until the machine is nearly idle (other engineers' tests share its 2 cores).

    Returns the seconds waited; gives up after ``max_wait_s`` (the run is then flagged by
    ``other_cpu_pct``).
    """
    import psutil

    limit = MAX_WAIT_S if max_wait_s is None else max_wait_s
    t0 = time.perf_counter()
    while limit > 0 and psutil.cpu_percent(interval=1.0) > max_busy_pct and time.perf_counter() - t0 < limit:
        time.sleep(2.0)
    return time.perf_counter() - t0


def _busy_s() -> float:
    import psutil

    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _own_cpu_s() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def run_child(kind: str, audio: Path, out_dir: Path, env: dict[str, str] | None = None) -> Timings:
    """Run one job in a fresh interpreter; its timings, peak RSS and process wall time.

    ``other_cpu_pct`` is the CPU time other processes used meanwhile, in % of one core: a
    run with a high figure competed for the 2 cores and its times are not trustworthy.
    """
    waited = wait_for_quiet()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result = Path(f.name)
    busy0, own0 = _busy_s(), _own_cpu_s()
    cmd = [sys.executable, str(Path(__file__).resolve()), kind, str(audio), str(out_dir), str(result)]
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    t0 = time.perf_counter()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=full_env)
    poller = threading.Thread(target=_poll_rss, args=(proc.pid, samples, stop), daemon=True)
    poller.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    other = max(0.0, (_busy_s() - busy0) - (_own_cpu_s() - own0))
    stop.set()
    poller.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} on {audio.name} failed ({proc.returncode}):\n{stderr[-3000:]}")
    timings: Timings = json.loads(result.read_text())
    result.unlink()
    timings["process_s"] = wall
    timings["rss_samples"] = samples
    timings["other_cpu_pct"] = 100 * other / wall
    timings["waited_s"] = waited
    return timings


if __name__ == "__main__":
    child_main(sys.argv[1:])
