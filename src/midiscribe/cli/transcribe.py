"""`midiscribe transcribe`: files in, MIDI (and WAV, CSV, model outputs) out."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from midiscribe.core.backends import BACKENDS, PRECISIONS
from midiscribe.errors import MidiscribeError, OutputExistsError

if TYPE_CHECKING:
    from midiscribe.core.results import NoteOptions, Transcription
    from midiscribe.formats.midi import MidiOptions
    from midiscribe.music.quantize import QuantizeOptions

# The preset names, spelled here so that --help needs no import of the core.
PRESET_NAMES = ("general", "piano", "guitar", "bass", "voice", "strings", "winds", "basic-pitch")

PROGRESS_MIN_S = 20.0  # show a progress bar for inputs at least this long


def add_commands(commands: Any) -> None:
    t = commands.add_parser(
        "transcribe",
        help="transcribe audio or video files to MIDI",
        description="Transcribe each INPUT to OUTDIR/<name>.mid, and on request .wav, .csv and .npz. "
        "An INPUT ending in .npz (written by --save-model-outputs) is re-derived with the given note "
        "options without running the model again.",
    )
    t.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio or video files (wav, flac, mp3, ogg, opus, m4a, mp4, ...)",
    )
    t.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("."),
        metavar="OUTDIR",
        help="where outputs go (default: .)",
    )
    add_options(t, local=True)
    t.set_defaults(handler=_transcribe)


def add_options(t: Any, *, local: bool) -> None:
    """The output and note options of ``transcribe``, shared with ``remote transcribe``."""
    t.add_argument("--sonify", action="store_true", help="also write a .wav that plays the MIDI")
    t.add_argument("--notes-csv", action="store_true", help="also write a .csv of note events")
    t.add_argument(
        "--beat-columns",
        action="store_true",
        help="the .csv also gets start_beat,end_beat: bar.beat.thousandths on the MIDI file's grid",
    )
    t.add_argument("--save-model-outputs", action="store_true", help="also write the model's posteriorgrams (.npz)")
    t.add_argument("-f", "--overwrite", action="store_true", help="replace outputs that already exist")
    notes = t.add_argument_group("note options (defaults: the preset's; given options win over it)")
    notes.add_argument(
        "--preset",
        choices=list(PRESET_NAMES),
        default="general",
        help="options for a kind of music (general); basic-pitch = basic-pitch 0.4.0's settings",
    )
    notes.add_argument(
        "--onset-threshold", type=float, default=None, metavar="X", help="onset activation to start a note, 0-1 (0.6)"
    )
    notes.add_argument(
        "--frame-threshold",
        type=float,
        default=None,
        metavar="X",
        help="frame activation to keep a note on, 0-1 (0.4)",
    )
    notes.add_argument("--min-note-ms", type=float, default=None, metavar="MS", help="shortest note kept, ms (80)")
    notes.add_argument(
        "--min-frequency", type=float, default=None, metavar="HZ", help="drop notes below this frequency"
    )
    notes.add_argument(
        "--max-frequency", type=float, default=None, metavar="HZ", help="drop notes above this frequency"
    )
    notes.add_argument(
        "--melodia", action=argparse.BooleanOptionalAction, default=None, help="also notes without a detected onset"
    )
    notes.add_argument("--pitch-bends", action=argparse.BooleanOptionalAction, default=None, help="write pitch bends")
    music = t.add_argument_group("musical output")
    music.add_argument(
        "--quantize",
        default="off",
        metavar="GRID",
        help="move notes toward a grid on the beats: off, 1/4, 1/8, 1/16, 1/32, 1/8t, 1/16t (off)",
    )
    music.add_argument(
        "--quantize-strength", type=float, default=100.0, metavar="PCT", help="how far toward the grid, 0-100 (100)"
    )
    music.add_argument("--quantize-ends", action="store_true", help="snap note ends to the grid too")
    music.add_argument("--musicxml", action="store_true", help="also write the score as .musicxml and .mxl")
    music.add_argument(
        "--render-score",
        choices=["svg", "pdf", "png"],
        default=None,
        help="also render the score's pages (NAME.score-N.svg|png, NAME.score.pdf)",
    )
    midi = t.add_argument_group("MIDI and sound")
    midi.add_argument(
        "--multiple-pitch-bends",
        action="store_true",
        help="one track per pitch so overlapping notes keep their bends",
    )
    midi.add_argument(
        "--program",
        type=int,
        default=None,
        metavar="N",
        help="General MIDI program 0-127 (default: the preset's; general: 0, Acoustic Grand Piano)",
    )
    midi.add_argument("--tempo", type=float, default=120.0, metavar="BPM", help="MIDI tempo (120)")
    if local:
        midi.add_argument(
            "--soundfont", type=Path, default=None, metavar="SF2", help="General MIDI SoundFont for --sonify"
        )
        run = t.add_argument_group("inference (default: MIDISCRIBE_BACKEND / MIDISCRIBE_PRECISION, else auto)")
        run.add_argument(
            "--backend",
            choices=BACKENDS,
            default=None,
            help="auto: OpenVINO when installed and the CPU suits it, else onnxruntime",
        )
        run.add_argument(
            "--precision",
            choices=PRECISIONS,
            default=None,
            help="auto: int8 on CPUs with VNNI/AMX, else fp32; bf16 only when asked (drifts more)",
        )


@dataclass
class Outcome:
    name: str
    ok: bool
    duration_s: float = 0.0
    n_notes: int = 0
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)
    error: str = ""


def _note_options(args: argparse.Namespace) -> NoteOptions:
    from midiscribe.core.presets import preset_note_options

    return preset_note_options(
        args.preset,
        onset_threshold=args.onset_threshold,
        frame_threshold=args.frame_threshold,
        min_note_length_ms=args.min_note_ms,
        min_frequency_hz=args.min_frequency,
        max_frequency_hz=args.max_frequency,
        melodia_trick=args.melodia,
        pitch_bends=args.pitch_bends,
    )


def _midi_options(args: argparse.Namespace) -> MidiOptions:
    from midiscribe.core.presets import get_preset
    from midiscribe.formats.midi import MidiOptions

    program = args.program if args.program is not None else get_preset(args.preset).program
    return MidiOptions(program=program, tempo_bpm=args.tempo, multiple_pitch_bends=args.multiple_pitch_bends)


def _quantize_options(args: argparse.Namespace) -> QuantizeOptions:
    from midiscribe.music.quantize import QuantizeOptions

    return QuantizeOptions(grid=args.quantize, strength=args.quantize_strength, ends=args.quantize_ends)


def _targets(source: Path, args: argparse.Namespace, claimed: set[Path]) -> dict[str, Path]:
    out: Path = args.output_dir
    wanted = {
        "mid": True,
        "wav": args.sonify,
        "csv": args.notes_csv or args.beat_columns,
        "npz": args.save_model_outputs,
        "musicxml": args.musicxml,
        "mxl": args.musicxml,
        f"score.{args.render_score}": args.render_score is not None,
    }
    if source.suffix.lower() == ".npz":
        wanted["npz"] = False
    targets = {ext: out / f"{source.stem}.{ext}" for ext, on in wanted.items() if on}
    for path in targets.values():
        if path.resolve() in claimed:
            raise OutputExistsError(f"{path} is also the output of another input in this run")
        if path.exists() and not args.overwrite:
            raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    claimed.update(p.resolve() for p in targets.values())
    return targets


def _write(transcription: Transcription, targets: dict[str, Path], args: argparse.Namespace) -> list[Path]:
    from midiscribe.core.bends import written_bends
    from midiscribe.formats.atomic import atomic_path
    from midiscribe.formats.midi import write_midi
    from midiscribe.formats.notes_csv import write_notes_csv
    from midiscribe.formats.render import render_wav

    midi_options = _midi_options(args)
    # every output carries the bends the MIDI file carries
    transcription = written_bends(transcription, multiple_pitch_bends=midi_options.multiple_pitch_bends)
    notation = _notation_writers(transcription, targets, args, midi_options.program)
    writers: dict[str, Any] = notation | {
        "mid": lambda p: write_midi(transcription, p, midi_options),
        "csv": lambda p: write_notes_csv(transcription, p, beat_columns=args.beat_columns),
        "wav": lambda p: render_wav(transcription, p, midi_options=midi_options, soundfont=args.soundfont),
        "npz": lambda p: transcription.outputs.save(p) if transcription.outputs is not None else None,
    }
    written = []
    for ext, path in targets.items():
        if ext.startswith("score."):
            written += writers[ext](path)
            continue
        with atomic_path(path) as tmp:
            writers[ext](tmp)
        written.append(path)
    return written


def _notation_writers(tr: Transcription, targets: dict[str, Path], args: argparse.Namespace, program: int) -> Any:
    """Writers of the score outputs asked for (one layout shared by all of them)."""
    if not any(ext in targets for ext in ("musicxml", "mxl")) and args.render_score is None:
        return {}
    from midiscribe.formats.musicxml import musicxml_bytes, write_mxl
    from midiscribe.music.notation import score_of

    grid = "auto" if args.quantize == "off" else args.quantize
    score = score_of(tr, title=targets["mid"].stem, note_value=grid, program=program, fallback_bpm=args.tempo)
    data = musicxml_bytes(score)

    def pages(first: Path) -> list[Path]:
        from midiscribe.formats.atomic import atomic_path
        from midiscribe.formats.score import render_pages

        fmt = args.render_score
        rendered = render_pages(data, fmt)
        paths = (
            [first]
            if fmt == "pdf"
            else [first.with_name(f"{first.stem}-{n}.{fmt}") for n in range(1, len(rendered) + 1)]
        )
        for path, page in zip(paths, rendered, strict=True):
            with atomic_path(path) as tmp:
                tmp.write_bytes(page)
        return paths

    return {
        "musicxml": lambda p: p.write_bytes(data),
        "mxl": lambda p: write_mxl(score, p, xml=data),
        f"score.{args.render_score}": pages,
    }


def _run_one(source: Path, args: argparse.Namespace, claimed: set[Path], console: Any) -> Outcome:
    from midiscribe.core.outputs import ModelOutputs
    from midiscribe.core.transcribe import retune, transcribe
    from midiscribe.music.analysis import analyse
    from midiscribe.music.quantize import quantize

    started = time.perf_counter()
    targets = _targets(source, args, claimed)
    options = _note_options(args)
    if source.suffix.lower() == ".npz":
        transcription = retune(ModelOutputs.load(source), options)
    else:
        from midiscribe.core.model import load_model

        model = load_model(backend=args.backend, precision=args.precision)
        with _progress_bar(console, source.name) as report:
            transcription = transcribe(
                source, options, model=model, keep_contour=args.save_model_outputs, progress=report
            )
    transcription = quantize(
        analyse(transcription, fallback_bpm=args.tempo), _quantize_options(args), fallback_bpm=args.tempo
    )
    written = _write(transcription, targets, args)
    return Outcome(
        name=source.name,
        ok=True,
        duration_s=transcription.duration_s,
        n_notes=len(transcription.notes),
        seconds=time.perf_counter() - started,
        written=written,
    )


class _progress_bar:
    """A rich progress bar that appears only once the input is known to be long."""

    def __init__(self, console: Any, name: str) -> None:
        self.console, self.name = console, name
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _progress_bar:
        return self

    def __call__(self, done_s: float, total_s: float | None) -> None:
        if self.progress is None:
            if total_s is None or total_s < PROGRESS_MIN_S or not self.console.is_terminal:
                return
            from rich.progress import BarColumn, Progress, TimeRemainingColumn

            self.progress = Progress(
                "[bold]{task.description}",
                BarColumn(),
                "{task.percentage:>3.0f}%",
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.name, total=total_s)
        self.progress.update(self.task, completed=done_s)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _transcribe(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    out = Console()
    try:
        _note_options(args)
        _midi_options(args)
        _quantize_options(args)
        from midiscribe.core.backends import choose

        choose(args.backend, args.precision)  # refused before any work: an unsafe or impossible ask
    except MidiscribeError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    claimed: set[Path] = set()
    outcomes = []
    for name in args.inputs:
        source = Path(name)
        try:
            outcomes.append(_run_one(source, args, claimed, console))
        except MidiscribeError as exc:
            outcomes.append(Outcome(name=source.name, ok=False, error=str(exc)))
        except OSError as exc:
            outcomes.append(Outcome(name=source.name, ok=False, error=f"{exc.strerror or exc}: {exc.filename or ''}"))
    return summary(out, outcomes, "midiscribe transcribe")


def summary(out: Any, outcomes: list[Outcome], title: str) -> int:
    """Print the table of what each input gave; the exit code: 0 if all succeeded, else 1."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for column in ("input", "audio", "notes", "time", "result"):
        table.add_column(column, justify="right" if column in ("audio", "notes", "time") else "left")
    for o in outcomes:
        result = ", ".join(p.name for p in o.written) if o.ok else f"[red]failed:[/] {escape(o.error)}"
        audio = f"{o.duration_s:.1f} s" if o.ok else ""
        table.add_row(o.name, audio, str(o.n_notes) if o.ok else "", f"{o.seconds:.2f} s" if o.ok else "", result)
    out.print(table)
    return 0 if all(o.ok for o in outcomes) else 1
