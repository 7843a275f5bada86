"""run_job(task_id): the only place where a request becomes work.

fetch the input -> transcribe -> write outputs to the store -> record -> enqueue the webhook.
The embedded worker pool calls it; so will any other dispatcher. Outputs are written
under fixed keys, so a repeat after a crash overwrites them harmlessly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midiscribe.core.bends import written_bends
from midiscribe.core.model import load_model
from midiscribe.core.results import NoteOptions, Transcription
from midiscribe.core.transcribe import transcribe
from midiscribe.errors import AudioError, AudioTooLongError, MidiscribeError, OptionsError
from midiscribe.formats.encode import encode_audio
from midiscribe.formats.midi import MidiOptions, write_midi
from midiscribe.formats.musicxml import musicxml_bytes, write_mxl
from midiscribe.formats.notes_csv import write_notes_csv
from midiscribe.formats.render import render_wav
from midiscribe.formats.score import render_pages
from midiscribe.music.analysis import analyse
from midiscribe.music.notation import score_of
from midiscribe.music.quantize import QuantizeOptions, quantize
from midiscribe.service.outside.fetch import FetchError, FetchPolicy, download
from midiscribe.service.outside.storage import ObjectStore
from midiscribe.service.payloads import failure_payload, success_payload
from midiscribe.service.records import tasks
from midiscribe.service.redact import public_message
from midiscribe.service.settings import Settings
from midiscribe.service.wiring import s3_inputs
from midiscribe.service.work.retention import purge_task_files
from midiscribe.service.work.transient import DependencyDown, dependency_of, retrying
from midiscribe.service.workdir import scratch

log = logging.getLogger("midiscribe.jobs")


class LeaseLost(Exception):
    """Another worker took this task over (our lease ran out)."""


class Cancelled(Exception):
    """The task's owner cancelled it (DELETE); its files are deleted."""


class StopRequested(Exception):
    """The worker is shutting down; the task goes back to the queue."""


class TimeLimitExceeded(Exception):
    """The run took longer than its limit, which follows the audio's duration (settings)."""


@dataclass
class JobContext:
    settings: Settings
    engine: Any
    store: ObjectStore
    owner: str
    policy: FetchPolicy
    threads: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class _Heartbeat:
    """Renews the lease and records progress at most every few seconds."""

    def __init__(self, ctx: JobContext, task_id: str, audio_s: float | None = None) -> None:
        self.ctx, self.task_id = ctx, task_id
        self.every = min(5.0, ctx.settings.lease_s / 4)
        self.last = 0.0
        self.started = time.monotonic()
        self.limit_s = ctx.settings.task_time_limit_s(audio_s)
        self.progress = 0

    def __call__(self, progress: int, *, force: bool = False) -> None:
        self.progress = progress
        if self.ctx.stop.is_set():
            raise StopRequested
        now = time.monotonic()
        if now - self.started > self.limit_s:
            raise TimeLimitExceeded(f"the task took over its limit of {self.limit_s:.0f} s")
        if force or now - self.last >= self.every:
            self.last = now
            ctx = self.ctx
            renewed = retrying(
                "renewing the lease",
                lambda: tasks.renew(ctx.engine, self.task_id, ctx.owner, ctx.settings.lease_s, progress),
                ctx.settings.transient_retry_s,
            )
            if not renewed:
                raise Cancelled if tasks.is_cancelled(ctx.engine, self.task_id) else LeaseLost

    def keep(self) -> None:
        """Between retries of a store call: keep the lease if the database can (it may be down too)."""
        with contextlib.suppress(DependencyDown):
            self(self.progress, force=True)

    def audio(self, done_s: float, total_s: float | None) -> None:
        fraction = done_s / total_s if total_s else 0.0
        if total_s:  # the duration of a URL input is known once it is open
            self.limit_s = min(self.limit_s, self.ctx.settings.task_time_limit_s(total_s))
        self(10 + int(80 * min(1.0, fraction)))


def run_job(ctx: JobContext, task_id: str) -> str:
    """Claim and run one task; returns what became of it."""
    retry_s = ctx.settings.transient_retry_s
    lease_s = ctx.settings.lease_s
    row = retrying("claiming the task", lambda: tasks.claim(ctx.engine, task_id, ctx.owner, lease_s), retry_s)
    if row is None:
        return "not-claimed"
    if row.attempts > ctx.settings.max_task_attempts:
        _fail(ctx, row, 500, "worker_died", f"the task stopped its worker {row.attempts - 1} times; giving up")
        return "failed"
    beat = _Heartbeat(ctx, task_id, row.input_duration_s)
    log.info("task %s: started (attempt %d) by %s", task_id, row.attempts, ctx.owner)
    try:
        with scratch(ctx.settings.work_path, "task-") as tmp:
            result = _work(ctx, row, Path(tmp), beat)
    except Cancelled:  # outputs written before the cancel are deleted with the rest
        purge_task_files(ctx.store, ctx.engine, row)
        log.info("task %s: cancelled by its owner; stopped", task_id)
        return "cancelled"
    except LeaseLost:
        log.warning("task %s: lease lost to another worker; dropping this run", task_id)
        return "lost"
    except StopRequested:
        tasks.release(ctx.engine, task_id, ctx.owner)
        log.info("task %s: released for a later run", task_id)
        return "released"
    except TimeLimitExceeded as exc:
        return _fail(ctx, row, 500, "time_limit_exceeded", str(exc))
    except DependencyDown as exc:
        if exc.dependency == "database":  # nothing can be recorded: the lease runs out, the sweep hands it on
            log.warning("task %s: %s; left for a later run", task_id, exc)
            return "interrupted"
        return _fail(ctx, row, 503, f"{exc.dependency}_unavailable", str(exc))
    except FetchError as exc:
        return _fail(ctx, row, exc.status, exc.code, str(exc))
    except AudioTooLongError as exc:
        return _fail(ctx, row, 413, "audio_too_long", str(exc))
    except AudioError as exc:
        return _fail(ctx, row, 422, "unsupported_audio", str(exc))
    except OptionsError as exc:
        return _fail(ctx, row, 400, "invalid_options", str(exc))
    except MidiscribeError as exc:
        log.exception("task %s failed", task_id)
        return _fail(ctx, row, 500, "processing_error", str(exc))
    except Exception as exc:
        if dependency_of(exc) == "database":  # a read outside the retried calls: as above
            log.warning("task %s: database unavailable (%s); left for a later run", task_id, type(exc).__name__)
            return "interrupted"
        log.exception("task %s: unexpected error", task_id)
        return _fail(ctx, row, 500, "internal_error", f"an unexpected error occurred while processing (task {task_id})")
    values = {"status": "completed", "progress": 100, **result}
    webhook = success_payload(row, result["result"], ctx.store)
    done = retrying(
        "recording the result",
        lambda: tasks.finish(ctx.engine, task_id, ctx.owner, values=values, webhook=webhook),
        retry_s,
    )
    log.info("task %s: %s", task_id, "completed" if done else "finished by another worker")
    return "completed" if done else "lost"


def _fail(ctx: JobContext, row: Any, status: int, code: str, message: str) -> str:
    message = public_message(message)  # a client reads it: no working paths
    values = {"status": "failed", "error_status": status, "error_code": code, "error_message": message}
    webhook = failure_payload(row, code, message)
    retrying(
        "recording the failure",
        lambda: tasks.finish(ctx.engine, row.id, ctx.owner, values=values, webhook=webhook),
        ctx.settings.transient_retry_s,
    )
    log.info("task %s: failed (%s: %s)", row.id, code, message)
    return "failed"


def _fetch_input(ctx: JobContext, row: Any, tmp: Path, beat: _Heartbeat) -> Path:
    """The input on local disk; a long download keeps renewing the lease."""
    name = Path(row.input_name or "input").name or "input"
    dest = tmp / f"input-{name}"

    def progress(_bytes: int) -> None:
        beat(5)

    if row.input_kind == "url":
        download(row.input_ref, dest, ctx.policy, progress=progress)
    elif row.input_kind == "s3":
        _fetch_s3(ctx, row.input_ref, dest, progress)
    else:
        _store_call(ctx, beat, "reading the input", lambda: ctx.store.fetch_to(row.input_ref, dest))
    return dest


def _store_call(ctx: JobContext, beat: _Heartbeat, what: str, call: Callable[[], object]) -> None:
    retrying(what, call, ctx.settings.transient_retry_s, between=beat.keep)


def _fetch_s3(ctx: JobContext, uri: str, dest: Path, progress: Callable[[int], None]) -> None:
    """Check the object again (it may be gone, denied or replaced since submit), then stream it."""
    inputs = s3_inputs(ctx.settings)
    obj = inputs.locate(uri) if inputs is not None else None
    if inputs is None or obj is None:
        raise FetchError(400, "s3_not_configured", "the input is an s3:// location but S3 inputs are off here")
    inputs.download(obj, dest, progress)


def _work(ctx: JobContext, row: Any, tmp: Path, beat: _Heartbeat) -> dict[str, Any]:
    req = row.request
    note_options = NoteOptions(**req["note_options"])
    midi_options = MidiOptions(**req["midi_options"])
    beat(1, force=True)
    source = _fetch_input(ctx, row, tmp, beat)
    beat(10, force=True)
    model = load_model(threads=ctx.threads, backend=ctx.settings.backend, precision=ctx.settings.precision)
    transcription = transcribe(
        source,
        note_options,
        model=model,
        max_duration_s=ctx.settings.max_audio_duration_s,
        progress=beat.audio,
    )
    transcription = quantize(
        analyse(transcription, fallback_bpm=midi_options.tempo_bpm),
        QuantizeOptions(**req.get("quantize", {})),
        fallback_bpm=midi_options.tempo_bpm,
    )
    beat(90, force=True)
    # every output carries the bends the MIDI file carries (issue 15, defect 4)
    transcription = written_bends(transcription, multiple_pitch_bends=midi_options.multiple_pitch_bends)
    keys = _write_outputs(ctx, row.id, transcription, midi_options, req, tmp, beat)
    keys |= _write_notation(ctx, row, transcription, midi_options, req, tmp, beat)
    keys["music"] = music_summary(transcription)
    return {"result": keys, "n_notes": len(transcription.notes), "duration_s": transcription.duration_s}


def music_summary(tr: Transcription) -> dict[str, Any]:
    """What the status response says of the music: tempo (null with a reason when no beat was
    heard), time signature, number of beats in the grid, key."""
    grid = tr.grid
    key = tr.key.name if tr.key is not None else None
    if grid is None:
        return {"tempo_bpm": None, "tempo_reason": "no beat grid", "time_signature": None, "beats": None, "key": key}
    return {
        "tempo_bpm": grid.tempo_bpm,
        "tempo_reason": grid.reason if grid.tempo_bpm is None else None,
        "time_signature": str(grid.time_signature),
        "beats": grid.n_beats,
        "key": key,
        "grid": grid.as_dict(),  # for the re-tune endpoint: the same grid as the task's MIDI file
    }


def _sonify(tr: Transcription, path: Path, midi_options: MidiOptions, soundfont: str | None, tmp: Path) -> None:
    """Render WAV, then encode it to the asked format (``sonify_format``) when that is not WAV."""
    if path.suffix == ".wav":
        render_wav(tr, path, midi_options=midi_options, soundfont=soundfont)
        return
    wav = tmp / "sonified.wav"
    render_wav(tr, wav, midi_options=midi_options, soundfont=soundfont)
    encode_audio(wav, path)
    wav.unlink()


def _write_outputs(
    ctx: JobContext,
    task_id: str,
    tr: Transcription,
    midi_options: MidiOptions,
    req: dict[str, Any],
    tmp: Path,
    beat: _Heartbeat,
) -> dict[str, Any]:
    keys: dict[str, Any] = {"midi": None, "wav": None, "csv": None, "outputs": None}
    writers: dict[str, tuple[str, Callable[[Path], object]]] = {
        "midi": ("mid", lambda p: write_midi(tr, p, midi_options)),
        "wav": (
            req.get("sonify_format", "wav"),
            lambda p: _sonify(tr, p, midi_options, ctx.settings.soundfont, tmp),
        ),
        "csv": ("csv", lambda p: write_notes_csv(tr, p, beat_columns=bool(req.get("beat_columns")))),
        "outputs": ("npz", lambda p: tr.outputs.save(p) if tr.outputs is not None else None),
    }
    wanted = {"midi": True, "wav": req["sonify_midi"], "csv": req["save_note_events"], "outputs": True}
    for name, (ext, write) in writers.items():
        if not wanted[name]:
            continue
        path = tmp / f"{task_id}.{ext}"
        write(path)
        key = ctx.store.result_key(task_id, ext)
        _store_call(ctx, beat, f"writing {key}", lambda: ctx.store.put_file(key, path))  # noqa: B023
        keys[name] = key
        beat(95, force=True)  # rendering an hour of audio takes a while: keep the lease
    return keys


def _write_notation(
    ctx: JobContext,
    row: Any,
    tr: Transcription,
    midi_options: MidiOptions,
    req: dict[str, Any],
    tmp: Path,
    beat: _Heartbeat,
) -> dict[str, Any]:
    """MusicXML (.musicxml, .mxl) and rendered score pages, only when the request asked for them."""
    fmt = req.get("render_score")
    if not req.get("save_musicxml") and not fmt:
        return {}
    title = Path(row.input_name or "").stem or "Transcription"
    grid = req.get("quantize", {}).get("grid", "off")  # an explicit grid is the score's too
    value = "auto" if grid == "off" else grid
    score = score_of(
        tr, title=title, note_value=value, program=midi_options.program, fallback_bpm=midi_options.tempo_bpm
    )
    data = musicxml_bytes(score)
    keys: dict[str, Any] = {}
    if req.get("save_musicxml"):
        for ext in ("musicxml", "mxl"):
            path = tmp / f"{row.id}.{ext}"
            path.write_bytes(data) if ext == "musicxml" else write_mxl(score, path, xml=data)
            keys[ext] = ctx.store.result_key(row.id, ext)
            _store_call(ctx, beat, f"writing {keys[ext]}", lambda: ctx.store.put_file(keys[ext], path))  # noqa: B023
    if fmt:
        beat(96, force=True)
        pages = render_pages(data, fmt)
        keys["score"] = []
        for n, page in enumerate(pages, start=1):
            ext = f"score.{fmt}" if fmt == "pdf" else f"score-{n}.{fmt}"
            path = tmp / f"{row.id}.{ext}"
            path.write_bytes(page)
            key = ctx.store.result_key(row.id, ext)
            _store_call(ctx, beat, f"writing {key}", lambda: ctx.store.put_file(key, path))  # noqa: B023
            keys["score"].append(key)
            beat(97)
    return keys
