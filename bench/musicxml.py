"""MusicXML export time for 5 minutes of dense music: layout (grid, staves, voices, note values) + XML.

Two inputs, both 300 s on a rubato grid (the tempo drifts 84-132 bpm, so nothing lines up in seconds):
``synthetic``, a piano texture of about 17 notes a second (sixteenths and an eighth-note inner voice over a
bass and chords, eighth-note triplets every few bars) and ``transcribed``, our own notes of the eval
set's renders (cached model outputs, default options) laid end to end to 300 s. Prints the median of
``--repeat`` runs of ``layout`` + ``musicxml_bytes`` (+ the .mxl zip), and whether the result is
valid against the MusicXML 4.0 XSD shipped in tests/. ``--with-music21`` also times music21 writing the same notes
(not a dependency: ``pip install music21`` first), as the field's reference, in the same run.

    .venv/bin/python bench/musicxml.py
"""

from __future__ import annotations

import argparse
import io
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

DURATION_S = 300.0
XSD_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "musicxml-4.0"


def rubato_grid() -> Any:
    from midiscribe.music.grid import BeatGrid, TimeSignature

    beats, t, i = [], 0.0, 0
    while t < DURATION_S + 2:
        beats.append(t)
        bpm = 108 + 24 * math.sin(i / 40)  # 84-132 bpm
        t += 60.0 / bpm
        i += 1
    return BeatGrid(tuple(beats), TimeSignature(4, 4), tempo_bpm=108.0)


def synthetic_notes(grid: Any) -> list[Any]:
    from midiscribe import Note

    rng = random.Random(7)
    notes = []
    for b in range(grid.n_beats - 2):
        at = grid.time
        for s in range(4):  # right hand: sixteenths, some held
            notes.append(
                Note(
                    at(b + s / 4) + rng.gauss(0, 0.008),
                    at(b + (s + rng.choice((1, 1, 2))) / 4),
                    rng.randint(64, 86),
                    0.6,
                )
            )
        notes.append(Note(at(b), at(b + rng.choice((1, 2))), rng.randint(36, 50), 0.5))  # bass
        notes += [Note(at(b), at(b + 1), p, 0.4) for p in (rng.randint(52, 58), rng.randint(59, 63))]  # chord
        notes += [Note(at(b + h / 2), at(b + (h + 1) / 2), rng.randint(60, 70), 0.4) for h in range(2)]  # inner
        if b % 8 == 4:
            notes += [Note(at(b + k / 3), at(b + (k + 1) / 3), 74 + k, 0.5) for k in range(3)]
    return sorted(notes, key=lambda n: n.start_s)


def transcribed_notes() -> list[Any]:
    import dataclasses

    from _eval_outputs import eval_outputs
    from midiscribe import retune

    notes, offset = [], 0.0
    items = [(i, o) for i, o in eval_outputs() if str(i["source"]).startswith("synth")]
    while offset < DURATION_S:
        for _, outputs in items:
            tr = retune(outputs)
            notes += [dataclasses.replace(n, start_s=n.start_s + offset, end_s=n.end_s + offset) for n in tr.notes]
            offset += tr.duration_s
            if offset >= DURATION_S:
                break
    return [n for n in notes if n.end_s < DURATION_S]


def export(notes: list[Any], grid: Any) -> tuple[bytes, float]:
    from midiscribe.formats.musicxml import musicxml_bytes, write_mxl
    from midiscribe.music.key import estimate_key
    from midiscribe.music.notation import layout

    t0 = time.perf_counter()
    score = layout(notes, grid, key=estimate_key(notes), title="bench")
    data = musicxml_bytes(score)
    write_mxl(score, io.BytesIO(), xml=data)
    return data, time.perf_counter() - t0


def valid(data: bytes) -> bool:
    from lxml import etree

    local = {
        "http://www.musicxml.org/xsd/xml.xsd": "xml.xsd",
        "http://www.w3.org/2001/xml.xsd": "xml.xsd",
        "http://www.musicxml.org/xsd/xlink.xsd": "xlink.xsd",
    }

    class Offline(etree.Resolver):  # type: ignore[misc]
        def resolve(self, url: str, pubid: str, context: Any) -> Any:
            return self.resolve_filename(str(XSD_DIR / local[url]), context) if url in local else None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Offline())
    schema = etree.XMLSchema(etree.parse(str(XSD_DIR / "musicxml.xsd"), parser))
    return bool(schema.validate(etree.fromstring(data)))


def music21_seconds(notes: list[Any], grid: Any) -> float:
    import music21 as m21

    t0 = time.perf_counter()
    part = m21.stream.Part()
    part.append(m21.meter.TimeSignature("4/4"))
    for n in notes:
        start = round(grid.position(n.start_s) * 12) / 12
        length = max(1 / 12, round(grid.position(n.end_s) * 12) / 12 - start)
        part.insert(start, m21.note.Note(n.pitch, quarterLength=length))
    out = io.BytesIO()
    path = Path("/tmp") / f"bench-music21-{time.time_ns()}.musicxml"
    m21.stream.Score([part]).write("musicxml", fp=str(path))
    out.write(path.read_bytes())
    path.unlink()
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--with-music21", action="store_true")
    args = p.parse_args()
    grid = rubato_grid()
    for name, notes in (("synthetic", synthetic_notes(grid)), ("transcribed", transcribed_notes())):
        times, data = [], b""
        for _ in range(args.repeat):
            data, secs = export(notes, grid)
            times.append(secs)
        rate = len(notes) / DURATION_S
        line = (
            f"{name}: {len(notes)} notes ({rate:.1f}/s) in {DURATION_S:.0f} s of music: "
            f"export median {statistics.median(times):.2f} s (min {min(times):.2f}), "
            f"{len(data) / 1e6:.1f} MB, valid MusicXML 4.0: {valid(data)}"
        )
        if args.with_music21:
            m21 = music21_seconds(notes, grid)
            line += f"; music21 {m21:.1f} s ({m21 / statistics.median(times):.0f}x)"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
