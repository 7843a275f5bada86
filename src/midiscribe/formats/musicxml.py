"""MusicXML 4.0 (``.musicxml``, and compressed ``.mxl``) from a score layout, written with lxml.

The layout (bars, staves, voices, ties, triplets) is ``midiscribe.music.notation``'s; this module only
spells and serializes it. Why not music21 or partitura, which can do both: measured on this machine
(README, "MusicXML"), music21 10.5 took 56 s to write 5 minutes of dense piano, far over the 2 s we
allow; partitura 1.9 downloads a SoundFont from the internet when it is imported next to pyfluidsynth
(which our ``soundfont`` extra installs) and fails offline, and it leaves voices, staves and
triplets to the caller anyway. Writing the elements ourselves takes a few hundred milliseconds.

Pitches are spelled from the key signature (sharps in sharp keys and C, flats in flat keys);
accidentals are written where a note differs from the key signature or from an earlier note of the
same step and octave in the bar, as engravers (and Verovio, which draws only written accidentals) expect.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import zipfile
from collections.abc import Iterable
from typing import IO, Any

from lxml import etree
from lxml.etree import SubElement

from midiscribe.music.notation import DIVISIONS, Event, Measure, Score

_Element = Any  # lxml ships no type information

__all__ = ["musicxml_bytes", "write_musicxml", "write_mxl"]

_DOCTYPE = (
    '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 4.0 Partwise//EN" '
    '"http://www.musicxml.org/dtds/partwise.dtd">'
)
_SHARPS = (
    ("C", 0),
    ("C", 1),
    ("D", 0),
    ("D", 1),
    ("E", 0),
    ("F", 0),
    ("F", 1),
    ("G", 0),
    ("G", 1),
    ("A", 0),
    ("A", 1),
    ("B", 0),
)
_FLATS = (
    ("C", 0),
    ("D", -1),
    ("D", 0),
    ("E", -1),
    ("E", 0),
    ("F", 0),
    ("G", -1),
    ("G", 0),
    ("A", -1),
    ("A", 0),
    ("B", -1),
    ("B", 0),
)
_ORDER_OF_SHARPS = "FCGDAEB"
_ACCIDENTALS = {-1: "flat", 0: "natural", 1: "sharp"}
_CLEFS = {"treble": ("G", "2"), "bass": ("F", "4")}
_CONTAINER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<container><rootfiles>'
    '<rootfile full-path="score.musicxml" media-type="application/vnd.recordare.musicxml+xml"/>'
    "</rootfiles></container>\n"
)


def _key_alters(fifths: int) -> dict[str, int]:
    """Step -> alteration the key signature gives it."""
    if fifths >= 0:
        return {step: 1 for step in _ORDER_OF_SHARPS[:fifths]}
    return {step: -1 for step in _ORDER_OF_SHARPS[::-1][:-fifths]}


def musicxml_bytes(score: Score) -> bytes:
    """The score as a MusicXML 4.0 partwise document."""
    root = etree.Element("score-partwise", version="4.0")
    if score.title:
        etree.SubElement(etree.SubElement(root, "work"), "work-title").text = score.title
        etree.SubElement(root, "movement-title").text = score.title
    ident = etree.SubElement(root, "identification")
    encoding = etree.SubElement(ident, "encoding")
    etree.SubElement(encoding, "software").text = "midiscribe"
    etree.SubElement(encoding, "encoding-date").text = _dt.date.today().isoformat()
    part_list = etree.SubElement(root, "part-list")
    score_part = etree.SubElement(part_list, "score-part", id="P1")
    etree.SubElement(score_part, "part-name").text = score.title or "Music"
    instrument = etree.SubElement(score_part, "score-instrument", id="P1-I1")
    etree.SubElement(instrument, "instrument-name").text = "Instrument"
    midi = etree.SubElement(score_part, "midi-instrument", id="P1-I1")
    etree.SubElement(midi, "midi-channel").text = "1"
    etree.SubElement(midi, "midi-program").text = str(score.program + 1)  # 1-based in MusicXML
    part = etree.SubElement(root, "part", id="P1")
    fifths = score.key.fifths if score.key is not None else 0
    for i, measure in enumerate(score.measures):
        _measure(part, measure, score, fifths, first=i == 0)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=_DOCTYPE, pretty_print=True)
    return body


def _measure(part: _Element, measure: Measure, score: Score, fifths: int, *, first: bool) -> None:
    attrs = {"number": measure.number}
    if measure.implicit:
        attrs["implicit"] = "yes"
    m = SubElement(part, "measure", attrs)
    if first:
        _attributes(m, score, fifths)
        _tempo(m, score.tempo_qpm)
    spelling = _FLATS if fifths < 0 else _SHARPS
    key_alters = _key_alters(fifths)
    voices = sorted(measure.voices.items())
    for n, ((staff, voice), events) in enumerate(voices):
        if n:
            SubElement(SubElement(m, "backup"), "duration").text = str(measure.length)
        state: dict[tuple[str, int], int] = {}
        for event in events:
            _event(m, event, staff, voice, measure.length, spelling, key_alters, state)


def _attributes(m: _Element, score: Score, fifths: int) -> None:
    a = SubElement(m, "attributes")
    SubElement(a, "divisions").text = str(DIVISIONS)
    key = SubElement(a, "key")
    SubElement(key, "fifths").text = str(fifths)
    if score.key is not None:
        SubElement(key, "mode").text = score.key.mode
    time = SubElement(a, "time")
    SubElement(time, "beats").text = str(score.time_signature.numerator)
    SubElement(time, "beat-type").text = str(score.time_signature.denominator)
    if score.staves > 1:
        SubElement(a, "staves").text = str(score.staves)
    for staff, clef_name in enumerate(score.clefs, start=1):
        sign, line = _CLEFS[clef_name]
        clef = SubElement(a, "clef", number=str(staff)) if score.staves > 1 else SubElement(a, "clef")
        SubElement(clef, "sign").text = sign
        SubElement(clef, "line").text = line


def _tempo(m: _Element, qpm: float) -> None:
    """One metronome mark (and the playback tempo) at the start of the piece."""
    d = SubElement(m, "direction", placement="above")
    metronome = SubElement(SubElement(d, "direction-type"), "metronome")
    SubElement(metronome, "beat-unit").text = "quarter"
    SubElement(metronome, "per-minute").text = str(round(qpm))
    SubElement(d, "sound", tempo=f"{qpm:.2f}")


def _event(
    m: _Element,
    e: Event,
    staff: int,
    voice: int,
    length: int,
    spelling: tuple[tuple[str, int], ...],
    key_alters: dict[str, int],
    state: dict[tuple[str, int], int],
) -> None:
    for k, pitch in enumerate(e.pitches or (None,)):
        note = SubElement(m, "note")
        if k:
            SubElement(note, "chord")
        accidental = None
        if pitch is None:
            SubElement(note, "rest", measure="yes") if e.measure_rest else SubElement(note, "rest")
        else:
            step, alter = spelling[pitch % 12]
            octave = pitch // 12 - 1
            p = SubElement(note, "pitch")
            SubElement(p, "step").text = step
            if alter:
                SubElement(p, "alter").text = str(alter)
            SubElement(p, "octave").text = str(octave)
            current = state.get((step, octave), key_alters.get(step, 0))
            if alter != current and not e.tie_stop:
                accidental = _ACCIDENTALS[alter]
            state[(step, octave)] = alter
        SubElement(note, "duration").text = str(length if e.measure_rest else e.duration)
        if e.tie_stop:
            SubElement(note, "tie", type="stop")
        if e.tie_start:
            SubElement(note, "tie", type="start")
        SubElement(note, "voice").text = str(voice)
        if not e.measure_rest:
            SubElement(note, "type").text = e.kind
            for _ in range(e.dots):
                SubElement(note, "dot")
        if accidental:
            SubElement(note, "accidental").text = accidental
        if e.tuplet:
            tm = SubElement(note, "time-modification")
            SubElement(tm, "actual-notes").text = "3"
            SubElement(tm, "normal-notes").text = "2"
        SubElement(note, "staff").text = str(staff)
        _notations(note, e, first_of_chord=k == 0)


def _notations(note: _Element, e: Event, *, first_of_chord: bool) -> None:
    brackets = [] if not first_of_chord or e.tuplet in (None, "inside") else _tuplet_types(e.tuplet)
    if not (e.tie_start or e.tie_stop or brackets):
        return
    n = SubElement(note, "notations")
    if e.tie_stop:
        SubElement(n, "tied", type="stop")
    if e.tie_start:
        SubElement(n, "tied", type="start")
    for kind in brackets:
        SubElement(n, "tuplet", type=kind, bracket="yes")


def _tuplet_types(tuplet: str | None) -> Iterable[str]:
    return ("start", "stop") if tuplet == "start-stop" else (tuplet,) if tuplet else ()


def write_musicxml(score: Score, target: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write ``score`` as an uncompressed ``.musicxml`` file."""
    data = musicxml_bytes(score)
    if isinstance(target, str | os.PathLike):
        with open(target, "wb") as fh:
            fh.write(data)
    else:
        target.write(data)


def write_mxl(score: Score, target: str | os.PathLike[str] | IO[bytes], *, xml: bytes | None = None) -> None:
    """Write ``score`` as a compressed ``.mxl`` (a zip with ``META-INF/container.xml``, MusicXML 4.0).

    ``xml``: the score's ``musicxml_bytes`` when the caller has them already.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mimetype", "application/vnd.recordare.musicxml", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", _CONTAINER, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("score.musicxml", xml or musicxml_bytes(score), compress_type=zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    if isinstance(target, str | os.PathLike):
        with open(target, "wb") as fh:
            fh.write(data)
    else:
        target.write(data)
