"""MusicXML from a known grid: valid against the MusicXML 4.0 XSD, ties across bar lines, a grand staff,
one tempo mark, key and time signature, triplets; the .mxl container; score pages with Verovio."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from midiscribe import Note
from midiscribe.formats.musicxml import musicxml_bytes, write_mxl
from midiscribe.music.grid import BeatGrid, TimeSignature
from midiscribe.music.key import Key
from midiscribe.music.notation import layout

XSD_DIR = Path(__file__).parent / "data" / "musicxml-4.0"
_LOCAL = {
    "http://www.musicxml.org/xsd/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://www.musicxml.org/xsd/xlink.xsd": "xlink.xsd",
}


class _Offline(etree.Resolver):  # type: ignore[misc]
    """The schemas' imports from the shipped copies; anything else on the network is an error."""

    def resolve(self, url: str, pubid: str, context: object) -> object:
        if url in _LOCAL:
            return self.resolve_filename(str(XSD_DIR / _LOCAL[url]), context)
        if url.startswith(("http:", "https:")):
            raise AssertionError(f"the schema wants {url}")
        return None


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Offline())
    return etree.XMLSchema(etree.parse(str(XSD_DIR / "musicxml.xsd"), parser))


def check(schema: etree.XMLSchema, data: bytes) -> etree._Element:
    doc = etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False))
    assert schema.validate(doc), [str(e) for e in schema.error_log][:5]
    return doc


GRID = BeatGrid.constant(100.0, 30.0, time_signature=TimeSignature(3, 4), detected=True)  # 0.6 s a beat


def notes_at(*spec: tuple[float, float, int]) -> list[Note]:
    """(start beat, length in beats, pitch) on GRID -> notes in seconds, played a little unevenly."""
    out = []
    for i, (b, length, p) in enumerate(spec):
        jitter = 0.012 * ((-1) ** i)
        out.append(Note(GRID.time(b) + jitter, GRID.time(b + length) - jitter, p, 0.6))
    return out


def test_valid_with_key_time_tempo_title_and_ties(schema: etree.XMLSchema) -> None:
    # a note from beat 2 lasting 3 beats crosses the bar line at beat 3: tied
    score = layout(notes_at((0, 1, 60), (1, 1, 62), (2, 3, 64), (5, 1, 67)), GRID, key=Key(7, "major"), title="song")
    doc = check(schema, musicxml_bytes(score))
    assert doc.get("version") == "4.0" and doc.findtext("work/work-title") == "song"
    assert doc.findtext(".//key/fifths") == "1" and doc.findtext(".//key/mode") == "major"
    assert (doc.findtext(".//time/beats"), doc.findtext(".//time/beat-type")) == ("3", "4")
    assert len(doc.findall(".//metronome")) == 1 and doc.findtext(".//metronome/per-minute") == "100"
    assert len(doc.findall(".//sound[@tempo]")) == 1
    e4 = [n for n in doc.iter("note") if n.findtext("pitch/step") == "E"]
    assert [m.getparent().get("number") for m in e4] == ["1", "2"]
    assert e4[0].find("tie").get("type") == "start" and e4[1].find("tie").get("type") == "stop"
    assert e4[0].find("notations/tied").get("type") == "start"
    assert [n.findtext("type") for n in e4] == ["quarter", "half"]
    assert doc.findall(".//note/pitch/alter") == []  # G major spells F#: none of these need one


def test_wide_piano_texture_gets_a_grand_staff(schema: etree.XMLSchema) -> None:
    spec = []
    for bar in range(4):  # a bass line under a melody, two octaves apart and more
        for beat in range(3):
            b = bar * 3 + beat
            spec += [(b, 1, 36 + (b % 5)), (b, 0.5, 76 + (b % 4)), (b + 0.5, 0.5, 79 - (b % 3))]
    doc = check(schema, musicxml_bytes(layout(notes_at(*spec), GRID, title="piano")))
    assert doc.findtext(".//staves") == "2"
    assert [c.findtext("sign") for c in doc.findall(".//clef")] == ["G", "F"]
    staff_of = {
        int(n.findtext("pitch/octave")) * 12 + "C D EF G A B".index(n.findtext("pitch/step")): n.findtext("staff")
        for n in doc.iter("note")
        if n.find("pitch") is not None
    }
    assert all(staff_of[p] == "2" for p in staff_of if p < 50) and all(staff_of[p] == "1" for p in staff_of if p > 70)


def test_a_narrow_melody_gets_one_staff_and_its_clef(schema: etree.XMLSchema) -> None:
    low = check(schema, musicxml_bytes(layout(notes_at(*[(b, 1, 40 + b % 5) for b in range(6)]), GRID)))
    assert low.find(".//staves") is None and low.findtext(".//clef/sign") == "F"


def test_triplets_and_voices(schema: etree.XMLSchema) -> None:
    third = 1 / 3
    spec = [(0, third, 72), (third, third, 74), (2 * third, third, 76), (1, 1, 77), (2, 1, 79)]
    spec += [(0, 3, 64)]  # a held note under the melody: a second voice
    doc = check(schema, musicxml_bytes(layout(notes_at(*spec), GRID)))
    modified = [n for n in doc.iter("note") if n.find("time-modification") is not None]
    assert len(modified) == 3 and all(n.findtext("type") == "eighth" for n in modified)
    brackets = [t.get("type") for t in doc.iter("tuplet")]
    assert brackets == ["start", "stop"]
    assert {n.findtext("voice") for n in doc.iter("note")} == {"1", "2"}
    assert len(doc.findall(".//backup")) >= 1


def test_a_pickup_bar_is_implicit(schema: etree.XMLSchema) -> None:
    grid = BeatGrid(tuple(0.6 * i for i in range(40)), TimeSignature(3, 4), first_downbeat=1)
    score = layout([Note(0.0, 0.6, 67, 0.5), Note(0.6, 1.8, 72, 0.5)], grid)
    doc = check(schema, musicxml_bytes(score))
    first = doc.find(".//measure")
    assert first.get("implicit") == "yes" and first.get("number") == "0"


def test_mxl_container() -> None:
    score = layout(notes_at((0, 1, 60), (1, 2, 64)), GRID, title="zip")
    buf = io.BytesIO()
    write_mxl(score, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        assert z.namelist()[0] == "mimetype" and z.read("mimetype") == b"application/vnd.recordare.musicxml"
        root = etree.fromstring(z.read("META-INF/container.xml"))
        assert root.find(".//rootfile").get("full-path") == "score.musicxml"
        assert b"<score-partwise" in z.read("score.musicxml")


def test_empty_transcription_is_a_valid_score(schema: etree.XMLSchema) -> None:
    doc = check(schema, musicxml_bytes(layout([], GRID, title="silence")))
    assert doc.find(".//rest") is not None


def test_score_pages_as_svg() -> None:
    pytest.importorskip("verovio", reason="the score extra (verovio) is not installed")
    from midiscribe.formats.score import render_pages

    pages = render_pages(musicxml_bytes(layout(notes_at((0, 1, 60), (1, 2, 64)), GRID, title="svg")), "svg")
    assert len(pages) == 1 and b"<svg" in pages[0][:500]
    assert b"</svg>" in pages[0]


def test_imports_into_musescore(tmp_path: Path) -> None:
    """MuseScore 3 (Debian's musescore3, headless) opens the score and engraves it to PDF."""
    import shutil
    import subprocess

    exe = shutil.which("mscore3") or shutil.which("musescore3")
    if exe is None:
        pytest.skip("MuseScore 3 is not installed (Debian: apt-get install musescore3; make test does it as root)")
    spec = [(b, 1, 40 + b % 7) for b in range(9)] + [(b, 0.5, 72 + b % 5) for b in range(9)]
    spec += [(2, 1 / 3, 76), (2 + 1 / 3, 1 / 3, 77), (2 + 2 / 3, 1 / 3, 79), (6, 3, 67)]
    src = tmp_path / "in.musicxml"
    src.write_bytes(musicxml_bytes(layout(notes_at(*spec), GRID, key=Key(10, "minor"), title="muse")))
    out = tmp_path / "out.pdf"
    env = {
        "QT_QPA_PLATFORM": "offscreen",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    done = subprocess.run([exe, "-o", str(out), str(src)], capture_output=True, text=True, timeout=120, env=env)
    said = done.stdout + done.stderr
    # MuseScore answers "success" even for a file it could not read; its importer's own checks say so
    assert done.returncode == 0 and "success" in said, said
    assert "not a valid MusicXML" not in said and "empty score" not in said, said
    assert out.read_bytes().startswith(b"%PDF")
