"""Sweep note options over the eval set's kept model outputs (no model run): micro F1 per source.

Uses ``_eval_outputs`` (model outputs computed once, cached under ``bench/.cache``). Each grid point
re-derives notes with ``retune`` and scores them with the set's ``eval.py`` functions. Prints one row
per option set, sorted by the mean over sources of micro F1 (no-offset + with-offset) / 2, so that
no single large source decides (the one-item 2-4 s sources maestro, madmom, slakh are shown, not
ranked). ``--sources`` limits the items (e.g. the dev items of one kind; ranked then by their pooled F1).

    .venv/bin/python bench/sweep_notes.py
    .venv/bin/python bench/sweep_notes.py --onset 0.5,0.6 --frame 0.3,0.4 --melodia 1 --min-ms 127.7
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import defaultdict
from typing import Any

import numpy as np

from _eval_outputs import eval_module, eval_outputs

# One very short item each (2-4 s, under 40 reference notes): shown, but left out of the ranking.
TINY = ("maestro", "madmom", "slakh")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def score_notes(pairs: list[tuple[dict[str, Any], Any]], ev: Any) -> dict[str, dict[str, float]]:
    rows: dict[str, list[Any]] = defaultdict(list)
    for item, tr in pairs:
        ref_iv, ref_p = ev.load_ref_csv(str(item["reference_csv"]))
        est_iv = np.array([(n.start_s, max(n.end_s, n.start_s + 1e-3)) for n in tr.notes]).reshape(-1, 2)
        est_p = np.array([n.pitch for n in tr.notes], dtype=float)
        row = ev.score(ref_iv, ref_p, est_iv, est_p)
        rows[str(item["source"])].append(row)
        rows["ALL"].append(row)
    return {s: {"on": ev.micro(r, "no_offset"), "off": ev.micro(r, "with_offset")} for s, r in rows.items()}


def main() -> int:
    from midiscribe import NoteOptions, retune

    p = argparse.ArgumentParser()
    p.add_argument("--onset", type=_floats, default=[0.4, 0.5, 0.6, 0.7])
    p.add_argument("--frame", type=_floats, default=[0.3, 0.4, 0.5])
    p.add_argument("--melodia", type=lambda t: [bool(int(x)) for x in t.split(",")], default=[True, False])
    p.add_argument("--min-ms", type=_floats, default=[58.0, 127.7])
    p.add_argument("--sources", default="", help="comma-separated sources or instruments substrings to keep")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    ev = eval_module()
    items = eval_outputs()
    if args.sources:
        keys = args.sources.split(",")
        items = [(i, o) for i, o in items if any(k in str(i["source"]) or k in str(i["audio"]) for k in keys)]
    results = []
    for onset, frame, melodia, min_ms in itertools.product(args.onset, args.frame, args.melodia, args.min_ms):
        opts = NoteOptions(
            onset_threshold=onset, frame_threshold=frame, melodia_trick=melodia, min_note_length_ms=min_ms
        )
        scores = score_notes([(i, retune(o, opts)) for i, o in items], ev)
        per_source = [v for s, v in scores.items() if s not in ("ALL", *TINY)]
        mean = statistics.mean((v["on"] + v["off"]) / 2 for v in per_source)
        if args.sources:  # the items of one kind: rank by their pooled (micro) F1
            mean = (scores["ALL"]["on"] + scores["ALL"]["off"]) / 2
        results.append((mean, (onset, frame, melodia, min_ms), scores))
    results.sort(key=lambda r: -r[0])
    sources = [s for s in results[0][2] if s != "ALL"] + ["ALL"]
    print("onset frame melodia min_ms | mean | " + " | ".join(f"{s[:14]} on/off" for s in sources))
    for mean, (o, f, m, ms), scores in results[: args.top]:
        cells = " | ".join(f"{scores[s]['on']:.3f}/{scores[s]['off']:.3f}" for s in sources)
        print(f"{o:.2f} {f:.2f} {int(m)} {ms:6.1f} | {mean:.3f} | {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
