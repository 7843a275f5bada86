"""Build the int8 basic-pitch model (``src/midiscribe/models/nmp-int8.xml.gz`` + ``.bin``) from ``nmp.onnx`` with NNCF.

Issue 13. NNCF is a build-time tool only (``pip install 'nncf>=2.16,<4'``); midiscribe never
imports it. The result is committed with ``nmp-int8.json``: the inputs' and outputs' sha256,
the versions used and the settings below, so that it can be checked and rebuilt.

Settings, each from the study in the issue:

* Only the five convolutions after the front end are quantized: the contour stack's two, the
  note branch's two and the onset branch's first. The whole front end (CQT, normalized log,
  batch norm, harmonic stacking) stays fp32: quantizing any of it spoiled 73 % of the frames.
  The onset head's last convolution stays fp32: its input joins a 0-1 sigmoid and a 0-14 ReLU,
  which one int8 scale cannot hold.
* Min/max ranges for activations and weights (NNCF's averaged ranges cost accuracy).
* The overflow fix off: exact only where int8 products accumulate in int32 (VNNI, AMX);
  ``core/backends.py`` runs this model only on such CPUs.
* Calibration on real music: the model's windows (as ``core/frames.py`` cuts them) of the
  even-numbered items of ``../shared/eval`` (the odd ones are left for the accuracy guard),
  without windows of pure silence, in manifest order.

Run (about a minute)::

    .venv/bin/pip install 'nncf>=2.16,<4'
    .venv/bin/python tools/build_int8.py            # writes the model and its provenance
    .venv/bin/python tools/build_int8.py --check    # rebuilds in a temp dir, compares checksums
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
OUT = ROOT / "src" / "midiscribe" / "models"
STEM = "nmp-int8"
MAX_WINDOWS = 300  # calibration windows (of about 400 in the even items)


def calibration_windows(max_windows: int = MAX_WINDOWS) -> list[np.ndarray]:
    """The model's windows of the even-numbered eval items, silent ones left out, in order."""
    from midiscribe.core import frames
    from midiscribe.core.audio import load_audio

    manifest = EVAL / "manifest.json"
    if not manifest.exists():
        raise SystemExit(f"{manifest} is missing: calibration needs the team's shared/eval beside the project")
    items = json.loads(manifest.read_text())
    out: list[np.ndarray] = []
    for item in items[::2]:
        samples = load_audio(EVAL / item["audio"])
        out.extend(w.copy() for w in frames.windows([samples]) if w.any())
    step = max(1, len(out) // max_windows)
    return out[::step][:max_windows]


def _target_convolutions(model: Any) -> tuple[list[str], list[str]]:
    """(the five convolutions to quantize, every other operation's name), found from the graph.

    The CQT's convolutions run over the 1-D signal (input height 1); the heads' over the
    (frames, bins) maps after the harmonic stacking. Of those, the onset head's last one takes
    the concatenation of the note map with the onset features, and stays fp32.
    """
    ops = model.get_ordered_ops()
    chosen = []
    for op in ops:
        if op.get_type_name() != "Convolution" or op.get_input_partial_shape(0)[2].get_length() == 1:
            continue
        if op.input_value(0).get_node().get_type_name() == "Concat":
            continue
        chosen.append(op.get_friendly_name())
    if len(chosen) != 5:
        raise SystemExit(f"expected five convolutions after the front end, found {len(chosen)}: {chosen}")
    return chosen, [op.get_friendly_name() for op in ops if op.get_friendly_name() not in chosen]


def build(out_dir: Path, onnx_path: Path) -> dict[str, Any]:
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    windows = calibration_windows()
    model = ov.Core().read_model(str(onnx_path))
    chosen, ignored = _target_convolutions(model)
    dataset = nncf.Dataset(windows, lambda w: w[None, :, None])
    quantized = nncf.quantize(
        model,
        dataset,
        subset_size=len(windows),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        target_device=nncf.TargetDevice.CPU,
        ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            overflow_fix=OverflowFix.DISABLE,
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
            weights_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
        ),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / f"{STEM}.xml"
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
        # The IR's XML is 460 KB of long TensorFlow op names; gzip (no name, no time: reproducible)
        # makes it 25 KB. The loader inflates it in memory.
        (out_dir / f"{STEM}.xml.gz").write_bytes(gzip.compress(xml.read_bytes(), compresslevel=9, mtime=0))
        shutil.copyfile(xml.with_suffix(".bin"), out_dir / f"{STEM}.bin")
    digests = {name: _sha(out_dir / name) for name in (f"{STEM}.xml.gz", f"{STEM}.bin")}
    return {
        "made_by": "tools/build_int8.py",
        "source_model": {"file": "basic-pitch 0.4.0 saved_models/icassp_2022/nmp.onnx", "sha256": _sha(onnx_path)},
        "versions": {"openvino": ov.__version__, "nncf": nncf.__version__, "numpy": np.__version__},
        "calibration": {
            "data": "../shared/eval, even-numbered manifest items, non-silent model windows, evenly thinned",
            "windows": len(windows),
        },
        "quantized_convolutions": chosen,
        "settings": {
            "preset": "performance (symmetric activations)",
            "ranges": "min/max for activations and weights",
            "overflow_fix": "disabled: exact on VNNI/AMX CPUs only",
            "ignored": "every operation but the convolutions above",
        },
        "sha256": digests,
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--check", action="store_true", help="rebuild in a temporary folder and compare with the committed")
    args = p.parse_args(argv)
    from midiscribe.core.model import find_weights

    onnx_path = find_weights()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            built = build(Path(tmp), onnx_path)
        committed = json.loads((OUT / f"{STEM}.json").read_text())
        same = built["sha256"] == committed["sha256"]
        print(
            "rebuilt:", built["sha256"], "\ncommitted:", committed["sha256"], "\nidentical" if same else "\nDIFFERENT"
        )
        return 0 if same else 1
    provenance = build(OUT, onnx_path)
    (OUT / f"{STEM}.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(json.dumps(provenance, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
