"""The basic-pitch model on OpenVINO's CPU plugin: fp32, bf16 or the committed int8 model (issue 13).

fp32 and bf16 read the same ``nmp.onnx`` as onnxruntime; bf16 is OpenVINO's
``INFERENCE_PRECISION_HINT``. int8 is ``models/nmp-int8.xml.gz`` + ``.bin`` in this package,
made from that ``nmp.onnx`` by ``tools/build_int8.py`` (NNCF, at build time only; its settings and
checksums are in ``models/nmp-int8.json``). The checksums are checked at load, so a model that
does not match its provenance is never run.

A batch is split over ``streams`` infer requests run at once (one thread each), each of a fixed
``WINDOWS_PER_REQUEST`` windows (a static shape; a short last batch is padded). On 2 cores, best of
12 interleaved rounds: 2 streams x 2 windows 32 ms a window, dynamic batch 39, 1 stream x 4 31,
2 x 4 26 but +19 MB peak RSS (the shared machine was loaded: ratios, not absolute times).

The harmonic stacking is rewritten at load (``stack_harmonics_channels_first``): same numbers,
less time. As converted from TensorFlow it joins 8 one-channel maps on the innermost axis, which
OpenVINO runs with a slow reference kernel (~16 % of the int8 model's time), then slices and
transposes the result to channels-first for the convolutions.

Windows of pure digital silence get the fp32 model's outputs for silence: the int8 model
answers them with onsets near 0.55 everywhere (fp32: 0.17), which would turn gaps into noise.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from midiscribe.core.backends import OPENVINO_INSTALL_HINT
from midiscribe.core.frames import WINDOW_FRAMES, WINDOW_SAMPLES, FloatArray
from midiscribe.core.model import WindowOutputs, default_threads, find_weights
from midiscribe.errors import ModelError

log = logging.getLogger("midiscribe")

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
INT8_XML = MODELS_DIR / "nmp-int8.xml.gz"
INT8_BIN = MODELS_DIR / "nmp-int8.bin"
INT8_PROVENANCE = MODELS_DIR / "nmp-int8.json"
WINDOWS_PER_REQUEST = 2
OUTPUTS = (
    "StatefulPartitionedCall:1",
    "StatefulPartitionedCall:2",
    "StatefulPartitionedCall:0",
)  # note, onset, contour


def stack_harmonics_channels_first(model: Any) -> bool:
    """Join the harmonic maps channels-first and slice there: bit-identical outputs, no slow concat.

    Pattern: ``Concat(axis=-1)`` of (B, T, F, 1) maps -> ``Slice`` of F from 0 -> ``Transpose(0, 3, 1, 2)``.
    Becomes: each map as (B, 1, T, F), ``Concat(axis=1)``, ``Slice`` of F. False if not found.
    """
    import openvino.opset13 as ops

    for concat in model.get_ordered_ops():
        if concat.get_type_name() != "Concat" or "harmonic-stacking" not in concat.get_friendly_name():
            continue
        consumers = [t.get_node() for t in concat.output(0).get_target_inputs()]
        if len(consumers) != 1 or consumers[0].get_type_name() != "Slice":
            return False
        cut = consumers[0]
        start, stop = (cut.input_value(i).get_node() for i in (1, 2))
        width = cut.get_output_partial_shape(0)[2]
        transposes = [t.get_node() for t in cut.output(0).get_target_inputs()]
        if (
            start.get_type_name() != "Constant"
            or stop.get_type_name() != "Constant"
            or any(start.get_data())
            or not width.is_static
            or int(stop.get_data()[2]) != width.get_length()
            or any(t.get_type_name() != "Transpose" for t in transposes)
            or any(list(t.input_value(1).get_node().get_data()) != [0, 3, 1, 2] for t in transposes)
        ):
            return False
        maps = [ops.unsqueeze(ops.squeeze(concat.input_value(i), [3]), [1]) for i in range(concat.get_input_size())]
        stacked = ops.slice(ops.concat(maps, 1), [0], [width.get_length()], [1], [3])
        for transpose in transposes:
            transpose.output(0).replace(stacked.output(0))
        model.validate_nodes_and_infer_types()
        return True
    return False


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_int8_model() -> tuple[bytes, bytes]:
    """The committed int8 model (IR XML, weights), after checking the files against their checksums."""
    try:
        provenance = json.loads(INT8_PROVENANCE.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"the int8 model's provenance {INT8_PROVENANCE} cannot be read: {exc}") from exc
    for name, digest in provenance["sha256"].items():
        path = MODELS_DIR / name
        if not path.is_file() or _sha256(path) != digest:
            raise ModelError(f"{path} is missing or does not match its sha256 in {INT8_PROVENANCE.name}")
    return gzip.decompress(INT8_XML.read_bytes()), INT8_BIN.read_bytes()


class OpenVinoModel:
    """basic-pitch ICASSP-2022 on OpenVINO's CPU plugin, at fp32, bf16 or int8."""

    name = "basic-pitch"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        precision: str = "int8",
        threads: int | None = None,
        streams: int | None = None,
    ) -> None:
        try:
            import openvino as ov  # heavy: imported only when this backend is built
        except ImportError as exc:
            raise ModelError(f"the openvino backend is not installed: {OPENVINO_INSTALL_HINT}") from exc
        self.precision = precision
        self.onnx_path = find_weights(path)
        self.path = INT8_XML if precision == "int8" else self.onnx_path
        threads = threads or default_threads()
        self.streams = max(1, min(streams or threads, threads))
        self.batch_windows = WINDOWS_PER_REQUEST * self.streams
        self._core: Any = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "NUM_STREAMS": str(self.streams),
            "INFERENCE_NUM_THREADS": str(threads),
            "CPU_DENORMALS_OPTIMIZATION": "NO",  # YES would set flush-to-zero in the caller's thread: the whole process
            # OpenVINO pins each stream's thread to a core by default; the service's worker processes
            # do not know of each other and would pile onto the same cores. Unpinned: same speed here.
            "ENABLE_CPU_PINNING": "NO",
        }
        try:
            graph = self._core.read_model(*read_int8_model()) if precision == "int8" else self._read_onnx()
            graph.reshape([WINDOWS_PER_REQUEST, WINDOW_SAMPLES, 1])
            if not stack_harmonics_channels_first(graph):
                log.warning("the model's harmonic stacking has another shape; running it unchanged (slower)")
            self._compiled: Any = self._core.compile_model(graph, "CPU", config)
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise ModelError(f"cannot load model {self.path} on OpenVINO: {exc}") from exc
        self._requests = [self._compiled.create_infer_request() for _ in range(self.streams)]
        self._silence: WindowOutputs | None = None
        log.debug("loaded %s %s on OpenVINO (%d streams, %d threads)", self.name, precision, self.streams, threads)

    def _read_onnx(self) -> Any:
        return self._core.read_model(str(self.onnx_path))

    def _run_parts(self, x: FloatArray) -> list[FloatArray]:
        n = x.shape[0]
        per = WINDOWS_PER_REQUEST
        parts = -(-n // per)
        if parts * per != n:
            x = np.concatenate([x, np.zeros((parts * per - n, x.shape[1]), np.float32)])
        outs: list[list[FloatArray]] = []
        for first in range(0, parts, len(self._requests)):  # more windows than batch_windows: in turns
            used = self._requests[: min(len(self._requests), parts - first)]
            for k, request in enumerate(used):
                part = x[(first + k) * per : (first + k + 1) * per]
                request.start_async({0: part[:, :, None]}, share_inputs=True)
            for request in used:
                request.wait()
                outs.append([request.get_tensor(name).data.copy() for name in OUTPUTS])
        return [np.concatenate([o[k] for o in outs])[:n] for k in range(3)]

    def run(self, batch: FloatArray) -> WindowOutputs:
        if batch.ndim != 2 or batch.shape[1] != WINDOW_SAMPLES:
            raise ModelError(f"expected (batch, {WINDOW_SAMPLES}) windows, got {batch.shape}")
        x = np.ascontiguousarray(batch, dtype=np.float32)
        note, onset, contour = self._run_parts(x)
        if note.shape[1] != WINDOW_FRAMES:
            raise ModelError(f"model returned {note.shape[1]} frames per window, expected {WINDOW_FRAMES}")
        silent = ~x.any(axis=1)
        if silent.any():
            quiet = self._silent_outputs()
            note[silent], onset[silent], contour[silent] = quiet.note, quiet.onset, quiet.contour
        return WindowOutputs(note=note, onset=onset, contour=contour)

    def _silent_outputs(self) -> WindowOutputs:
        """fp32 outputs for a window of zeros, computed once (on first need) from ``nmp.onnx``."""
        if self._silence is None:
            model = self._core.compile_model(self._read_onnx(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            result = model.create_infer_request().infer({0: np.zeros((1, WINDOW_SAMPLES, 1), np.float32)})
            note, onset, contour = (np.array(result[model.output(name)]) for name in OUTPUTS)
            self._silence = WindowOutputs(note=note, onset=onset, contour=contour)
        return self._silence
