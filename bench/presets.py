"""Every preset on every source of the eval set: micro F1 without and with offsets, beside the default's
(``general``) and basic-pitch's (the ``basic-pitch`` preset: basic-pitch 0.4.0's settings and notes).

No model run after the first: the set's model outputs are computed once and kept (``bench/_eval_outputs.py``,
under ``bench/.cache/``); each preset re-derives the notes with ``retune``, writes them with
``write_midi`` (the preset's program) and scores them with ``../shared/eval/eval.py``'s own functions.
A preset is tuned for one kind of instrument: read its column on the sources of that kind (marked *).

    .venv/bin/python bench/presets.py
"""

from __future__ import annotations

from _eval_outputs import eval_module, eval_outputs, score_items

# Sources (or item-name pieces) of each kind in the set; the set has no bass items.
KINDS = {
    "piano": ("maestro", "madmom", "synth/piano_"),
    "guitar": ("guitarset", "synth/guitar_"),
    "voice": ("synth/voice_",),
    "strings": ("-violin", "synth_slow_attack"),
    "winds": ("filosax", "-clarinet", "-saxphone", "-bassoon", "synth/flute_", "synth/woodwinds_"),
}


def _rows(items: list[tuple[dict[str, object], object]]) -> list[tuple[str, list[tuple[dict[str, object], object]]]]:
    """Per source, then per kind (the items of that kind, pooled), then ALL."""
    sources = sorted({str(i["source"]) for i, _ in items})
    rows = [(s, [(i, o) for i, o in items if i["source"] == s]) for s in sources]
    for kind, keys in KINDS.items():
        rows.append((f"{kind} items*", [(i, o) for i, o in items if any(k in str(i["audio"]) for k in keys)]))
    rows.append(("ALL", items))
    return rows


def main() -> int:
    from midiscribe import retune
    from midiscribe.core.presets import PRESETS
    from midiscribe.formats.midi import MidiOptions

    ev = eval_module()
    items = eval_outputs()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, preset in PRESETS.items():
        midi = MidiOptions(program=preset.program)
        per_row = {}
        for row, subset in _rows(items):
            scores = score_items([(i, retune(o, preset.note_options())) for i, o in subset], ev, midi)
            per_row[row] = scores["ALL"]
        table[name] = per_row
    names = list(PRESETS)
    print("micro F1, no offset / with offset; * = the dev items of one kind, pooled")
    print("| source | items | " + " | ".join(names) + " | general - basic-pitch |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for row, subset in _rows(items):
        cells = [f"{table[n][row]['F1_no_offset']:.3f} / {table[n][row]['F1_with_offset']:.3f}" for n in names]
        g, b = table["general"][row], table["basic-pitch"][row]
        diff = f"{g['F1_no_offset'] - b['F1_no_offset']:+.3f} / {g['F1_with_offset'] - b['F1_with_offset']:+.3f}"
        print(f"| {row} | {len(subset)} | " + " | ".join(cells) + f" | {diff} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
