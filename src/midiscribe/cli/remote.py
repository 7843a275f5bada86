"""`midiscribe remote transcribe`: files in, MIDI out, through a midiscribe service (the Python client).

The same options, progress bars, summary table and exit codes as local ``transcribe`` (0: every
input done; 1: some failed; 2: bad options or no server), several files at once (``--jobs``).
Runs no model here: nothing of the engine is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from midiscribe.cli.transcribe import Outcome, add_options, summary
from midiscribe.errors import MidiscribeError, OptionsError, OutputExistsError

DEFAULT_JOBS = 4  # files in flight at once: enough to keep a few server workers busy


def add_commands(commands: Any) -> None:
    remote = commands.add_parser(
        "remote",
        help="use a midiscribe service through its API",
        description="Commands that run on a midiscribe service (or a compatible one) through its API.",
    )
    sub = remote.add_subparsers(dest="remote_command", metavar="COMMAND")
    remote.set_defaults(handler=lambda args: _help(remote))
    t = sub.add_parser(
        "transcribe",
        help="transcribe files to MIDI on a server",
        description="Upload each INPUT (or have the server fetch an http(s):// or s3:// INPUT), wait for it, "
        "and download OUTDIR/<name>.mid, and on request .wav, .csv, .npz, .musicxml and score pages.",
    )
    t.add_argument("inputs", nargs="+", metavar="INPUT", help="audio or video files, or http(s):// or s3:// locations")
    t.add_argument(
        "-o", "--output-dir", type=Path, default=Path("."), metavar="OUTDIR", help="where outputs go (default: .)"
    )
    server = t.add_argument_group("server")
    server.add_argument("--server", default=None, metavar="URL", help="the service's base URL ($MIDISCRIBE_URL)")
    server.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="the API key (default: $MIDISCRIBE_API_KEY, which keeps it out of the process list)",
    )
    server.add_argument(
        "-j", "--jobs", type=int, default=DEFAULT_JOBS, metavar="N", help=f"files in flight at once ({DEFAULT_JOBS})"
    )
    server.add_argument(
        "--timeout", type=float, default=3600.0, metavar="S", help="seconds to wait for each file (3600)"
    )
    add_options(t, local=False)
    t.set_defaults(handler=_remote_transcribe)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The API's fields for the command's options (None: the server's default, the preset's)."""
    return {
        "sonify_midi": args.sonify,
        "save_note_events": args.notes_csv,
        "model": getattr(args, "model", None),  # --model, where this build has it (issue 10)
        "preset": args.preset,
        "onset_threshold": args.onset_threshold,
        "frame_threshold": args.frame_threshold,
        "minimum_note_length": args.min_note_ms,
        "minimum_frequency": args.min_frequency,
        "maximum_frequency": args.max_frequency,
        "melodia_trick": args.melodia,
        "include_pitch_bends": args.pitch_bends,
        "multiple_pitch_bends": args.multiple_pitch_bends,
        "midi_program": args.program,
        "midi_tempo": args.tempo,
        "quantize": args.quantize,
        "quantize_strength": args.quantize_strength,
        "quantize_ends": args.quantize_ends,
        "save_musicxml": args.musicxml,
        "render_score": args.render_score,
    }


def _check(args: argparse.Namespace) -> None:
    """The checks local ``transcribe`` makes before any work (pure: no engine), so that a bad
    option is exit 2 before anything is uploaded."""
    from midiscribe.core.presets import preset_note_options
    from midiscribe.music.quantize import QuantizeOptions

    preset_note_options(
        args.preset,
        onset_threshold=args.onset_threshold,
        frame_threshold=args.frame_threshold,
        min_note_length_ms=args.min_note_ms,
        min_frequency_hz=args.min_frequency,
        max_frequency_hz=args.max_frequency,
    )
    QuantizeOptions(grid=args.quantize, strength=args.quantize_strength, ends=args.quantize_ends)
    if args.program is not None and not 0 <= args.program <= 127:
        raise OptionsError(f"program must be 0-127, got {args.program}")
    if not 10 <= args.tempo <= 400:
        raise OptionsError(f"tempo must be 10-400 BPM, got {args.tempo:g}")
    if args.jobs < 1:
        raise OptionsError(f"--jobs must be at least 1, got {args.jobs}")


def _kinds(args: argparse.Namespace) -> tuple[Any, ...]:
    wanted = {
        "midi": True,
        "sonify": args.sonify,
        "notes": args.notes_csv,
        "musicxml": args.musicxml,
        "mxl": args.musicxml,
        "score": args.render_score is not None,
        "model_outputs": args.save_model_outputs,
    }
    return tuple(kind for kind, on in wanted.items() if on)


def _is_location(source: str) -> bool:
    return source.lower().startswith(("http://", "https://", "s3://"))


def _name(source: str) -> str:
    """The input's file name as the table shows it (a URL's last path segment)."""
    if _is_location(source):
        return PurePosixPath(unquote(urlsplit(source).path)).name or source
    return Path(source).name


def _stem(source: str) -> str:
    return (PurePosixPath(_name(source)).stem if _is_location(source) else Path(source).stem) or "audio"


def _claim(source: str, args: argparse.Namespace, claimed: set[Path]) -> None:
    """Refuse, before uploading, outputs that exist (without --overwrite) or that two inputs share."""
    out: Path = args.output_dir
    exts = {"mid": True, "wav": args.sonify, "csv": args.notes_csv, "npz": args.save_model_outputs}
    exts |= {"musicxml": args.musicxml, "mxl": args.musicxml}
    targets = [out / f"{_stem(source)}.{ext}" for ext, on in exts.items() if on]
    for path in targets:
        if path.resolve() in claimed:
            raise OutputExistsError(f"{path} is also the output of another input in this run")
        if path.exists() and not args.overwrite:
            raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    claimed.update(p.resolve() for p in targets)


class _Bars:
    """One rich progress bar per file in flight (the columns of local ``transcribe``), on a terminal."""

    def __init__(self, console: Any) -> None:
        self.progress: Any = None
        self._lock = threading.Lock()
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TimeRemainingColumn

            self.progress = Progress(
                "[bold]{task.description}",
                BarColumn(),
                "{task.percentage:>3.0f}%",
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> _Bars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def bar(self, name: str) -> Any:
        if self.progress is None:
            return None
        with self._lock:
            return self.progress.add_task(name, total=100)

    def update(self, bar: Any, percent: int) -> None:
        if bar is not None:
            self.progress.update(bar, completed=percent)

    def done(self, bar: Any) -> None:
        if bar is not None:
            self.progress.remove_task(bar)


def _run_one(client: Any, source: str, args: argparse.Namespace, bars: _Bars, tasks: list[Any]) -> Outcome:
    name = _name(source)
    started = time.perf_counter()
    fields = {k: v for k, v in _fields(args).items() if v is not None}
    bar = bars.bar(name)
    try:
        task = client.submit(source, **fields)
        tasks.append(task)
        info = task.wait(args.timeout, progress=lambda i: bars.update(bar, i.progress))
        written = task.download(args.output_dir, name=_stem(source), include=_kinds(args), overwrite=args.overwrite)
    finally:
        bars.done(bar)
    result = info.result
    return Outcome(
        name=name,
        ok=True,
        duration_s=(result.duration_s or 0.0) if result else 0.0,
        n_notes=(result.n_notes or 0) if result else 0,
        seconds=time.perf_counter() - started,
        written=written,
    )


def _safely(client: Any, source: str, args: argparse.Namespace, bars: _Bars, tasks: list[Any]) -> Outcome:
    name = _name(source)
    try:
        return _run_one(client, source, args, bars, tasks)
    except MidiscribeError as exc:
        return Outcome(name=name, ok=False, error=str(exc))
    except OSError as exc:
        return Outcome(name=name, ok=False, error=f"{exc.strerror or exc}: {exc.filename or ''}")


def _remote_transcribe(args: argparse.Namespace) -> int:
    from rich.console import Console

    from midiscribe.client import Client

    console = Console(stderr=True)
    try:
        _check(args)
        client = Client(args.server, args.api_key)
    except MidiscribeError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    claimed: set[Path] = set()
    outcomes: list[Outcome | None] = [None] * len(args.inputs)
    runnable = []
    for i, source in enumerate(args.inputs):
        try:
            _claim(source, args, claimed)
            runnable.append(i)
        except MidiscribeError as exc:
            outcomes[i] = Outcome(name=_name(source), ok=False, error=str(exc))
    tasks: list[Any] = []
    with client, _Bars(console) as bars, ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {i: pool.submit(_safely, client, args.inputs[i], args, bars, tasks) for i in runnable}
        try:
            for i, future in futures.items():
                outcomes[i] = future.result()
        except KeyboardInterrupt:
            # Drop what is not started, cancel on the server what is: the threads waiting on those
            # see them cancelled at their next poll and end, so leaving the pool does not hang.
            pool.shutdown(wait=False, cancel_futures=True)
            for task in list(tasks):
                if task.info is None or not task.info.finished:
                    with contextlib.suppress(MidiscribeError):
                        task.cancel()
            raise
    return summary(Console(), [o for o in outcomes if o is not None], "midiscribe remote transcribe")
