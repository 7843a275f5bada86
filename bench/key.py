"""Key estimation on the eval set's scored renders: estimate_key on our notes and on the reference notes.

The keys below are those the music21 10.5.1 corpus scores name (the renders were made from them; read
with music21's parser, which is not a midiscribe dependency). Two need a word:
``guitar_nylon_bach_bwv4.8``: the soprano part declares E minor, the other three parts carry no key
signature and the chorale cadences on D (Dorian-flavoured); we score it against the declared E minor.
``clarinet_piano_weber_concertino``: the clarinet part is written for B-flat clarinet in F major;
the concert key (the piano's) is E-flat major. The MAESTRO performance has no score and no key.

Prints, per item, the named key, the estimate from our transcription (cached model outputs,
default options) and from the reference notes, with each profile; then accuracy (exact key) and
key-signature accuracy (same number of sharps/flats: relative major/minor agree).

    .venv/bin/python bench/key.py
"""

from __future__ import annotations

import csv

from _eval_outputs import eval_outputs, stem

SCORED_KEYS = {
    "piano_joplin_maple_leaf_rag": (8, "major"),  # A-flat major (4 flats)
    "piano_mozart_k545_mv1": (0, "major"),
    "guitar_nylon_bach_bwv4.8": (4, "minor"),  # declared E minor (see above)
    "guitar_clean_corelli_op3no1": (5, "major"),
    "strings_haydn_op74no1_quartet": (0, "major"),
    "flute_folk_essen_melody": (7, "major"),
    "voice_oohs_piano_schubert_lindenbaum": (4, "major"),
    "woodwinds_bach_bwv7.7_fl_ob_cl_bn": (11, "minor"),
    "clarinet_piano_weber_concertino": (3, "major"),  # concert E-flat major
}


def reference_notes(path: str) -> list[object]:
    from midiscribe import Note

    with open(path) as fh:
        return [
            Note(start_s=float(r["onset_s"]), end_s=float(r["offset_s"]), pitch=int(r["midi_pitch"]), amplitude=0.5)
            for r in csv.DictReader(fh)
        ]


def main() -> int:
    from midiscribe import retune
    from midiscribe.music.key import PROFILES, Key, estimate_key

    rows = [(i, o) for i, o in eval_outputs() if stem(i) in SCORED_KEYS]
    hits: dict[str, list[int]] = {}
    print("| item | score | " + " | ".join(f"{p} (ours) | {p} (reference notes)" for p in PROFILES) + " |")
    print("|---|---|" + "---|---|" * len(PROFILES))
    for item, outputs in rows:
        truth = Key(*SCORED_KEYS[stem(item)])  # type: ignore[arg-type]
        ours = retune(outputs).notes
        ref = reference_notes(str(item["reference_csv"]))
        cells = [stem(item), truth.name]
        for profile in PROFILES:
            for label, notes in (("ours", ours), ("ref", ref)):
                k = estimate_key(notes, profile=profile)  # type: ignore[arg-type]
                exact = k is not None and (k.tonic, k.mode) == (truth.tonic, truth.mode)
                sig = k is not None and k.fifths == truth.fifths
                hits.setdefault(f"{profile} {label}", [0, 0])
                hits[f"{profile} {label}"][0] += exact
                hits[f"{profile} {label}"][1] += sig
                cells.append(f"{k.name} ({k.confidence:.2f})" if k else "none")
        print("| " + " | ".join(cells) + " |")
    print()
    n = len(rows)
    for name, (exact, sig) in hits.items():
        print(f"{name}: key {exact}/{n}, key signature {sig}/{n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
