"""The eval set's model outputs, computed once and kept, so note options can be swept without the model.

``eval_outputs()`` runs the model over every item of ``../shared/eval/manifest.json`` the first time and
saves each item's posteriorgrams with ``ModelOutputs.save`` under ``bench/.cache/eval-outputs/``
(git-ignored); later calls load them (about a second for all 44). ``score_items()`` scores notes with
the set's own ``eval.py`` functions, in process: the notes go through ``write_midi`` and eval.py's
MIDI reader, exactly as ``eval.py --pred-dir`` would read them.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

from _audio import CACHE_DIR, EVAL_DIR, MANIFEST, manifest_items

OUTPUTS_DIR = CACHE_DIR / "eval-outputs"


def stem(item: dict[str, Any]) -> str:
    return Path(str(item["audio"])).stem


def eval_module() -> ModuleType:
    """The eval set's own eval.py, so references and MIDI load exactly as it scores them."""
    spec = importlib.util.spec_from_file_location("_shared_eval", EVAL_DIR / "eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def eval_outputs(cache_dir: Path = OUTPUTS_DIR) -> list[tuple[dict[str, Any], Any]]:
    """(manifest item, ModelOutputs) for every eval item; the model runs only for items not cached."""
    from midiscribe import ModelOutputs, transcribe

    cache_dir.mkdir(parents=True, exist_ok=True)
    pairs = []
    for item in manifest_items(MANIFEST):
        path = cache_dir / f"{item['source']}--{stem(item)}.npz"
        if not path.exists():
            outputs = transcribe(str(item["audio"])).outputs
            assert outputs is not None
            outputs.save(path)
        pairs.append((item, ModelOutputs.load(path)))
    return pairs


def score_items(
    notes_by_item: list[tuple[dict[str, Any], Any]], ev: ModuleType, midi_options: Any = None
) -> dict[str, dict[str, float]]:
    """Per source and ALL: micro F1 without and with offsets (eval.py's ``micro``), and item counts."""
    from midiscribe.formats.midi import write_midi

    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        for item, transcription in notes_by_item:
            path = Path(tmp) / f"{stem(item)}.mid"
            write_midi(transcription, path, midi_options)
            ref_iv, ref_p = ev.load_ref_csv(str(item["reference_csv"]))
            est_iv, est_p = ev.load_pred_midi(str(path))
            row = ev.score(ref_iv, ref_p, est_iv, est_p)
            rows[str(item["source"])].append(row)
            rows["ALL"].append(row)
    return {
        source: {
            "n": len(r),
            "F1_no_offset": ev.micro(r, "no_offset"),
            "F1_with_offset": ev.micro(r, "with_offset"),
        }
        for source, r in rows.items()
    }


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    pairs = eval_outputs()
    print(f"{len(pairs)} items' model outputs in {OUTPUTS_DIR} ({time.perf_counter() - t0:.1f} s)")
