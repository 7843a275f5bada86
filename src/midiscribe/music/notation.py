"""Notes on a beat grid -> a score layout: bars, staves, voices, note values, ties and triplets.

Pure: transcribed notes in, a :class:`Score` out; ``formats/musicxml.py`` only serializes it.

Time is counted in integer ticks, :data:`DIVISIONS` per quarter note, from the first downbeat, so
every grid used here (1/32, 1/16, 1/8 triplets, 1/16 triplets) is exact. Steps, in order:

1. **Grid.** Each note's start and end become beat positions on the music's own grid and are
   snapped: by default to sixteenths, or, in a quarter-note span whose onsets fit the eighth-note
   triplet grid clearly better, to triplets (chosen span by span, as a copyist would); with an
   explicit note value (``grid="1/8"``), to that value everywhere.
2. **Staves.** A wide texture (both hands' registers in use) gets a grand staff. Which notes go to
   the lower staff is decided chord by chord with a Viterbi pass over split points: hands do not
   stretch past a tenth, prefer their own register, and move as little as they can from chord to
   chord (voice leading), rather than cutting at a fixed middle C.
3. **Voices.** Within a staff, a note that overlaps the next onset only a little (legato, release
   tails) ends there; notes with the same start and end form one chord; chords go to the
   voice that is free and closest in pitch, a new voice only when every voice still sounds (at most
   :data:`MAX_VOICES`; past that the voice that ends first is cut where the new chord starts).
4. **Note values.** Each chord or rest is cut at bar lines (and at a beat when it starts off the
   beat), then written as tied note values (dotted where that fits); inside a triplet span, as
   notes of a 3:2 tuplet with a bracket.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from midiscribe.core.results import Note, Transcription
from midiscribe.errors import OptionsError
from midiscribe.music.grid import BeatGrid, TimeSignature
from midiscribe.music.key import Key
from midiscribe.music.quantize import QUANTIZE_VALUES

__all__ = ["DIVISIONS", "Event", "Measure", "Score", "layout", "score_of"]

DIVISIONS = 24  # ticks per quarter: 1/32 = 3, 1/16 triplet = 4, 1/16 = 6, 1/8 triplet = 8
MAX_VOICES = 4  # per staff, as MusicXML editors show them
_STEP_TICKS = {"1/4": 24, "1/8": 12, "1/16": 6, "1/32": 3, "1/8t": 8, "1/16t": 4}
_TRIPLET_PREFERENCE = 0.6  # a span turns triplet only if its onsets fit that much better
# Written values: ticks -> (MusicXML type, dots), largest first.
_VALUES: tuple[tuple[int, str, int], ...] = (
    (144, "whole", 1),
    (96, "whole", 0),
    (72, "half", 1),
    (48, "half", 0),
    (36, "quarter", 1),
    (24, "quarter", 0),
    (18, "eighth", 1),
    (12, "eighth", 0),
    (9, "16th", 1),
    (6, "16th", 0),
    (3, "32nd", 0),
)
_TRIPLET_VALUES = {16: "quarter", 8: "eighth", 4: "16th"}  # sounding ticks inside a 3:2 tuplet
GRAND_STAFF_SPAN = 18  # semitones between the 5th and 95th percentile pitch that call for two staves


@dataclass(frozen=True, slots=True)
class Event:
    """One chord (``pitches``) or rest (no pitches) of a voice, as written.

    ``start``/``duration`` in ticks from the start of the measure; ``kind`` is the MusicXML note type
    (``"quarter"``...), ``dots`` its dots; ``tuplet`` says ``"start"``/``"stop"``/``"inside"`` of a 3:2
    tuplet or None; ``tie_start``/``tie_stop``: tied to the next/previous piece of the same chord.
    """

    start: int
    duration: int
    pitches: tuple[int, ...]
    kind: str
    dots: int = 0
    tuplet: str | None = None
    tie_start: bool = False
    tie_stop: bool = False
    velocity: int = 80
    measure_rest: bool = False


@dataclass(frozen=True, slots=True)
class Measure:
    """A bar: its length in ticks, whether it is a pickup, and its voices ``(staff, voice) -> events``."""

    number: str
    length: int
    implicit: bool
    voices: dict[tuple[int, int], list[Event]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Score:
    title: str
    time_signature: TimeSignature
    key: Key | None
    tempo_qpm: float
    clefs: tuple[str, ...]  # "treble" or "bass", one per staff
    measures: tuple[Measure, ...]
    program: int = 0

    @property
    def staves(self) -> int:
        return len(self.clefs)


@dataclass(slots=True)
class _Placed:
    start: int
    end: int
    pitch: int
    velocity: int
    staff: int = 1


def layout(
    notes: Sequence[Note],
    grid: BeatGrid,
    *,
    key: Key | None = None,
    title: str = "",
    note_value: str = "auto",
    program: int = 0,
) -> Score:
    """The score of ``notes`` on ``grid``; ``note_value`` is ``"auto"`` (1/16 and 1/8 triplets) or a quantize value."""
    if note_value != "auto" and (note_value not in QUANTIZE_VALUES or note_value == "off"):
        raise OptionsError(f"note_value must be auto or one of {', '.join(QUANTIZE_VALUES[1:])}; got {note_value!r}")
    ts = grid.time_signature
    bar = round(ts.beats_per_bar * ts.quarters_per_beat * DIVISIONS)
    snapper = _Snapper(grid, bar, note_value)
    placed = snapper.place(notes)
    clefs = _assign_staves(placed)
    first_bar = min((p.start // bar for p in placed), default=0)
    last_bar = max((max(p.end - 1, p.start) // bar for p in placed), default=0)
    measures = _measures(placed, snapper, bar, first_bar, last_bar, len(clefs))
    return Score(
        title=title,
        time_signature=ts,
        key=key,
        tempo_qpm=_tempo_qpm(grid),
        clefs=clefs,
        measures=tuple(measures),
        program=program,
    )


def score_of(
    tr: Transcription, *, title: str = "", note_value: str = "auto", program: int = 0, fallback_bpm: float = 120.0
) -> Score:
    """The score of a transcription on its own grid and key (a constant ``fallback_bpm`` 4/4 grid if it has none)."""
    grid = tr.grid or BeatGrid.constant(fallback_bpm, tr.duration_s, reason="no beat grid")
    return layout(tr.notes, grid, key=tr.key, title=title, note_value=note_value, program=program)


def _tempo_qpm(grid: BeatGrid) -> float:
    """The one tempo mark: the grid's tempo (or its median beat) in quarter notes per minute."""
    bpm = grid.tempo_bpm
    if bpm is None:
        gaps = sorted(b - a for a, b in zip(grid.beats_s, grid.beats_s[1:], strict=False))
        bpm = 60.0 / gaps[len(gaps) // 2]
    return bpm * grid.time_signature.quarters_per_beat


class _Snapper:
    """Ticks from the first downbeat, snapped to straight or triplet steps span by span."""

    def __init__(self, grid: BeatGrid, bar: int, note_value: str) -> None:
        self.grid = grid
        self.bar = bar
        ts = grid.time_signature
        self.qpb = ts.quarters_per_beat
        self.beat = round(self.qpb * DIVISIONS)
        self.origin = float(grid.first_downbeat)
        self.fixed = None if note_value == "auto" else _STEP_TICKS[note_value]
        # auto: triplet spans of a quarter, only where quarters tile the bar (not 6/8, 3/8, 5/8...)
        self.span = 24 if self.fixed is None else (self.fixed * 3 if self.fixed in (8, 4) else self.fixed)
        self.auto_triplets = self.fixed is None and not ts.compound and bar % 24 == 0
        self.triplet_spans: set[int] = set()

    def ticks(self, time_s: float) -> float:
        return (self.grid.position(time_s) - self.origin) * self.qpb * DIVISIONS

    def is_triplet(self, tick: int) -> bool:
        if self.fixed is not None:
            return self.fixed in (8, 4) and (tick % self.bar) // self.span * self.span + self.span <= self.bar
        return (tick // self.span) in self.triplet_spans

    def step_at(self, tick: float) -> int:
        if self.fixed is not None:
            return self.fixed if self.is_triplet(math.floor(tick)) else (self.fixed if self.fixed not in (8, 4) else 6)
        return 8 if (math.floor(tick) // self.span) in self.triplet_spans else 6

    def snap(self, tick: float) -> int:
        bar_start = math.floor(tick / self.bar) * self.bar
        span_start = bar_start + math.floor((tick - bar_start) / self.span) * self.span
        step = self.step_at(tick)
        snapped = span_start + round((tick - span_start) / step) * step
        return min(snapped, bar_start + self.bar)

    def place(self, notes: Sequence[Note]) -> list[_Placed]:
        raw = [(self.ticks(n.start_s), self.ticks(n.end_s), n) for n in notes]
        if self.auto_triplets:
            self._choose_triplets([s for s, _, _ in raw])
        placed: dict[tuple[int, int], _Placed] = {}
        for s, e, n in raw:
            start = self.snap(s)
            end = max(self.snap(e), start + self.step_at(start))
            held = placed.get((start, n.pitch))
            if held is None or end > held.end:
                placed[(start, n.pitch)] = _Placed(start, end, n.pitch, n.velocity)
        return sorted(placed.values(), key=lambda p: (p.start, -p.pitch))

    def _choose_triplets(self, starts: list[float]) -> None:
        errors: dict[int, list[float]] = {}
        for s in starts:
            span = math.floor(s / self.span)
            offset = s - span * self.span
            e = errors.setdefault(span, [0.0, 0.0, 0.0])
            e[0] += abs(offset - round(offset / 6) * 6)
            e[1] += abs(offset - round(offset / 8) * 8)
            e[2] += 1 if round(offset / 8) % 3 else 0  # lands on a triplet-only line
        self.triplet_spans = {
            span
            for span, (straight, triplet, off_beat) in errors.items()
            if off_beat and triplet < _TRIPLET_PREFERENCE * straight
        }


def _assign_staves(placed: list[_Placed]) -> tuple[str, ...]:
    """Clefs; sets ``staff`` on every note (1 = upper)."""
    if not placed:
        return ("treble",)
    pitches = sorted(p.pitch for p in placed)
    lo, hi = pitches[len(pitches) // 20], pitches[(len(pitches) * 19) // 20]
    below = sum(1 for p in pitches if p < 60) / len(pitches)
    if hi - lo >= GRAND_STAFF_SPAN and 0.1 <= below <= 0.9:
        _split_hands(placed)
        return ("treble", "bass")
    return ("treble",) if pitches[len(pitches) // 2] >= 55 else ("bass",)


def _hand_cost(hand: list[int], upper: bool) -> float:
    if not hand:
        return 0.0
    cost = max(0, hand[-1] - hand[0] - 15) * 2.0  # a stretch past a tenth
    for p in hand:
        cost += 0.6 * (max(0, 55 - p) if upper else max(0, p - 64))  # the other hand's register
    return cost


def _split_hands(placed: list[_Placed]) -> None:
    """Viterbi over chords: state j = the lowest j notes of the chord go to the lower staff."""
    groups: list[list[_Placed]] = []
    for p in placed:  # placed is sorted by start, then pitch descending
        if groups and groups[-1][0].start == p.start:
            groups[-1].append(p)
        else:
            groups.append([p])
    for g in groups:
        g.sort(key=lambda p: p.pitch)
    defaults = (48.0, 72.0)  # where an idle hand is assumed to wait: C3 and C5

    def centres(g: list[_Placed], j: int) -> tuple[float | None, float | None]:
        left, right = g[:j], g[j:]
        lc = sum(p.pitch for p in left) / len(left) if left else None
        rc = sum(p.pitch for p in right) / len(right) if right else None
        return lc, rc

    prev_cost: list[float] = []
    prev_pos: list[tuple[float, float]] = []
    back: list[list[int]] = []
    for g in groups:
        pitches = [p.pitch for p in g]
        costs, positions, choices = [], [], []
        for j in range(len(g) + 1):
            emit = _hand_cost(pitches[:j], False) + _hand_cost(pitches[j:], True)
            if j in (0, len(g)):  # one hand plays a wide chord while the other idles: unlikely
                emit += 0.5 * max(0, pitches[-1] - pitches[0] - 7)
            lc, rc = centres(g, j)
            best, arg = (0.0, -1) if not prev_cost else (math.inf, 0)
            for k, (pl, pr) in enumerate(prev_pos):
                move = (abs(lc - pl) if lc is not None else 0.0) + (abs(rc - pr) if rc is not None else 0.0)
                c = prev_cost[k] + 0.15 * move
                if c < best:
                    best, arg = c, k
            base = prev_pos[arg] if arg >= 0 else defaults
            costs.append(best + emit)
            positions.append((lc if lc is not None else base[0], rc if rc is not None else base[1]))
            choices.append(arg)
        prev_cost, prev_pos = costs, positions
        back.append(choices)
    j = min(range(len(prev_cost)), key=prev_cost.__getitem__)
    for i in range(len(groups) - 1, -1, -1):
        for n, p in enumerate(groups[i]):
            p.staff = 2 if n < j else 1
        j = back[i][j]


def _trim_legato(notes: list[_Placed]) -> None:
    """End a note where the next one starts when it overlaps it only a little (legato playing, release
    tails): a sixteenth, or a quarter of its length. Notation shows one line then, not two voices."""
    starts = sorted({p.start for p in notes})
    for p in notes:
        i = bisect.bisect_right(starts, p.start)
        if i < len(starts) and starts[i] < p.end <= starts[i] + max(6, (p.end - p.start) // 4):
            p.end = starts[i]


def _voices(placed: list[_Placed], staff: int) -> list[list[_Placed]]:
    """Chords (same start and end) of one staff dealt into voices, upper voice first."""
    mine = [p for p in placed if p.staff == staff]
    _trim_legato(mine)
    chords: dict[tuple[int, int], list[_Placed]] = {}
    for p in mine:
        chords.setdefault((p.start, p.end), []).append(p)
    voices: list[list[list[_Placed]]] = []
    for (start, _end), chord in sorted(chords.items(), key=lambda kv: (kv[0][0], -max(p.pitch for p in kv[1]))):
        centre = sum(p.pitch for p in chord) / len(chord)
        free = [v for v in voices if v[-1][0].end <= start]
        if free:
            target = min(free, key=lambda v: abs(centre - sum(p.pitch for p in v[-1]) / len(v[-1])))
        elif len(voices) < MAX_VOICES:
            target = []
            voices.append(target)
        else:  # every voice still sounds: cut the one that ends first where this chord starts
            target = min(voices, key=lambda v: v[-1][0].end)
            for p in target[-1]:
                p.end = start
            if target[-1][0].end <= target[-1][0].start:
                target.pop()
        target.append(chord)
    voices.sort(key=lambda v: -sum(p.pitch for c in v for p in c) / sum(len(c) for c in v))
    return [[p for chord in v for p in chord] for v in voices]


def _measures(
    placed: list[_Placed], snapper: _Snapper, bar: int, first_bar: int, last_bar: int, staves: int
) -> list[Measure]:
    pickup = first_bar == -1 and placed and min(p.start for p in placed) > -bar
    starts = {b: b * bar for b in range(first_bar, last_bar + 1)}
    lengths = {b: bar for b in starts}
    if pickup:
        earliest = min(p.start for p in placed)
        beat = snapper.beat
        begin = math.floor(earliest / beat) * beat
        starts[-1], lengths[-1] = begin, -begin
    measures = [
        Measure(number=str(b - first_bar + (0 if pickup else 1)), length=lengths[b], implicit=bool(pickup and b == -1))
        for b in starts
    ]
    for staff in range(1, staves + 1):
        for v, notes in enumerate(_voices(placed, staff)):
            _write_voice(notes, (staff, (staff - 1) * MAX_VOICES + v + 1), v == 0, measures, starts, snapper)
    for m in measures:  # a staff with no notes in a bar still shows a whole-bar rest
        for staff in range(1, staves + 1):
            _promote_voice(m, staff)
            if not any(s == staff for s, _ in m.voices):
                m.voices[(staff, (staff - 1) * MAX_VOICES + 1)] = [Event(0, m.length, (), "whole", measure_rest=True)]
    return measures


def _promote_voice(m: Measure, staff: int) -> None:
    """In a bar where a staff's first voice only rests, the next voice with notes takes its place."""
    first = (staff, (staff - 1) * MAX_VOICES + 1)
    if any(e.pitches for e in m.voices.get(first, [])):
        return
    others = sorted(k for k in m.voices if k[0] == staff and k != first)
    if others:
        m.voices[first] = m.voices.pop(others[0])


def _write_voice(
    notes: list[_Placed],
    where: tuple[int, int],
    first: bool,
    measures: list[Measure],
    starts: dict[int, int],
    snapper: _Snapper,
) -> None:
    """Cut a voice's chords, and the rests between them, into measures; ties join a chord's pieces.

    A staff's first voice fills every bar; another voice appears only in the bars where it has notes.
    """
    chords: dict[tuple[int, int], list[_Placed]] = {}
    for p in notes:
        chords.setdefault((p.start, p.end), []).append(p)
    ordered = list(starts.values())
    bar_ends = [s + m.length for s, m in zip(ordered, measures, strict=True)]
    spans: list[tuple[int, int, tuple[int, ...], int]] = []
    cursor = ordered[0]
    for (start, end), chord in sorted(chords.items()):
        if start > cursor:
            spans.append((cursor, start, (), 0))
        spans.append((start, end, tuple(sorted(p.pitch for p in chord)), max(p.velocity for p in chord)))
        cursor = max(cursor, end)
    if cursor < bar_ends[-1]:
        spans.append((cursor, bar_ends[-1], (), 0))
    written: dict[int, list[Event]] = {}
    for start, end, pitches, velocity in spans:
        values: list[tuple[int, Event]] = []
        for a, b in _cut(start, end, ordered, snapper):
            i = bisect.bisect_right(ordered, a) - 1
            values += [(i, ev) for ev in _spell(a - ordered[i], b - a, a, pitches, velocity, snapper)]
        for k, (i, ev) in enumerate(values):
            if pitches:
                ev = replace(ev, tie_stop=k > 0, tie_start=k < len(values) - 1)
            written.setdefault(i, []).append(ev)
    for i, events in written.items():
        if first or any(e.pitches for e in events):
            measures[i].voices[where] = _bracket_tuplets(events, ordered[i], snapper)


def _bracket_tuplets(events: list[Event], bar_start: int, snapper: _Snapper) -> list[Event]:
    """Mark the first and last value of each triplet span ``start`` and ``stop`` (both: ``start-stop``)."""
    groups: dict[int, list[int]] = {}
    for i, e in enumerate(events):
        if e.tuplet:
            groups.setdefault((bar_start + e.start) // snapper.span, []).append(i)
    for members in groups.values():
        first, last = members[0], members[-1]
        if first == last:
            events[first] = replace(events[first], tuplet="start-stop")
        else:
            events[first] = replace(events[first], tuplet="start")
            events[last] = replace(events[last], tuplet="stop")
    return events


def _cut(start: int, end: int, starts: list[int], snapper: _Snapper) -> list[tuple[int, int]]:
    """[start, end) cut at bar lines, triplet-span edges, and the next beat after an off-beat start."""
    cuts = {start, end}
    i = bisect.bisect_right(starts, start)
    while i < len(starts) and starts[i] < end:  # bar lines inside the span
        cuts.add(starts[i])
        i += 1
    span = snapper.span
    t = (start // span + 1) * span
    while t < end:
        if snapper.is_triplet(t) or snapper.is_triplet(t - 1):
            cuts.add(t)
        t += span
    beat = snapper.beat
    if start % beat:
        nxt = (start // beat + 1) * beat
        if nxt < end:
            cuts.add(nxt)
    points = sorted(cuts)
    return list(itertools.pairwise(points))


def _spell(
    offset: int, length: int, absolute: int, pitches: tuple[int, ...], velocity: int, snapper: _Snapper
) -> list[Event]:
    """One piece [offset, offset + length) as note values (tied by the caller)."""
    out: list[Event] = []
    triplet = snapper.is_triplet(absolute) and length < snapper.span
    if triplet:
        for value in sorted(_TRIPLET_VALUES, reverse=True):
            while length >= value:
                out.append(Event(offset, value, pitches, _TRIPLET_VALUES[value], tuplet="inside", velocity=velocity))
                offset, length = offset + value, length - value
    for ticks, kind, dots in _VALUES:
        while length >= ticks:
            out.append(Event(offset, ticks, pitches, kind, dots, velocity=velocity))
            offset, length = offset + ticks, length - ticks
    if length:  # below a 32nd (cannot happen on our grids): round into the last value
        raise OptionsError(f"cannot write a duration of {length} ticks")
    return out
