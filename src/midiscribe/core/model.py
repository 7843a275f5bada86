"""The model interface and the basic-pitch ICASSP-2022 model run with onnxruntime.

The weights (``nmp.onnx``, Apache-2.0) come from the ``basic-pitch`` 0.4.0 distribution,
installed without its dependencies (which would pull TensorFlow). The file is found
through the distribution's installed metadata; ``basic_pitch`` is never imported.
``MIDISCRIBE_MODEL_PATH`` or an explicit path points at another copy.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from midiscribe.core.frames import WINDOW_FRAMES, WINDOW_SAMPLES, FloatArray
from midiscribe.errors import ModelError, ModelWeightsMissingError

log = logging.getLogger("midiscribe")

WEIGHTS_DISTRIBUTION = "basic-pitch"
WEIGHTS_FILE = "saved_models/icassp_2022/nmp.onnx"
INSTALL_HINT = "pip install --no-deps 'basic-pitch==0.4.0'"


@dataclass(frozen=True, slots=True)
class WindowOutputs:
    """Posteriorgrams for a batch of windows: (batch, 172, 88), (batch, 172, 88), (batch, 172, 264)."""

    note: FloatArray
    onset: FloatArray
    contour: FloatArray


class Model(Protocol):
    """What the pipeline needs of a transcription model."""

    name: str

    def run(self, batch: FloatArray) -> WindowOutputs:
        """Run a (batch, WINDOW_SAMPLES) float32 array of windows."""
        ...


def find_weights(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate ``nmp.onnx``: the explicit path, ``MIDISCRIBE_MODEL_PATH``, then the installed wheel."""
    candidate = explicit or os.environ.get("MIDISCRIBE_MODEL_PATH")
    if candidate:
        path = Path(candidate).expanduser()
        if not path.is_file():
            raise ModelWeightsMissingError(
                f"model file {path} does not exist (set by MIDISCRIBE_MODEL_PATH or model_path)"
            )
        return path
    try:
        files = importlib.metadata.files(WEIGHTS_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if str(entry).replace("\\", "/").endswith(WEIGHTS_FILE):
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise ModelWeightsMissingError(
        "the basic-pitch model weights (nmp.onnx) are not installed. "
        f"Install them with: {INSTALL_HINT}  (or set MIDISCRIBE_MODEL_PATH to a copy of nmp.onnx)"
    )


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class BasicPitchModel:
    """basic-pitch ICASSP-2022 (``nmp.onnx``) on onnxruntime's CPU provider."""

    name = "basic-pitch"
    precision = "fp32"
    batch_windows = 2  # measured on 2 cores: 13.0 ms a window at 2, 15.1 at 1, 13.5 at 4 (and +58 MB)
    _INPUT = "serving_default_input_2:0"
    _OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0")

    def __init__(self, path: str | os.PathLike[str] | None = None, *, threads: int | None = None) -> None:
        import onnxruntime as ort  # heavy: imported only when a model is built

        self.path = find_weights(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Near-silent input makes denormals, which slow the convolutions badly.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load model {self.path}: {exc}") from exc
        log.debug("loaded %s from %s with %d threads", self.name, self.path, options.intra_op_num_threads)

    def run(self, batch: FloatArray) -> WindowOutputs:
        if batch.ndim != 2 or batch.shape[1] != WINDOW_SAMPLES:
            raise ModelError(f"expected (batch, {WINDOW_SAMPLES}) windows, got {batch.shape}")
        x = np.ascontiguousarray(batch, dtype=np.float32)[:, :, None]
        note, onset, contour = self._session.run(list(self._OUTPUTS), {self._INPUT: x})
        if note.shape[1] != WINDOW_FRAMES:
            raise ModelError(f"model returned {note.shape[1]} frames per window, expected {WINDOW_FRAMES}")
        return WindowOutputs(note=note, onset=onset, contour=contour)


_MODELS: dict[tuple[str, str | None, int | None, str, str], Model] = {}
_LOCK = threading.Lock()


def load_model(
    name: str = "basic-pitch",
    path: str | os.PathLike[str] | None = None,
    *,
    threads: int | None = None,
    backend: str | None = None,
    precision: str | None = None,
) -> Model:
    """The process-wide model of that name, built on first use and then reused.

    ``backend`` and ``precision`` default to ``MIDISCRIBE_BACKEND`` / ``MIDISCRIBE_PRECISION``,
    then ``auto``: the fastest that is safe on this CPU (see ``core/backends.py``).
    """
    from midiscribe.core.backends import choose

    if name != "basic-pitch":
        raise ModelError(f"unknown model {name!r}; available: basic-pitch")
    choice = choose(backend, precision)
    where = str(path) if path else os.environ.get("MIDISCRIBE_MODEL_PATH")
    key = (name, where, threads, choice.backend, choice.precision)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            if choice.backend == "openvino":
                from midiscribe.core.openvino_model import OpenVinoModel

                model = OpenVinoModel(path, precision=choice.precision, threads=threads)
            else:
                model = BasicPitchModel(path, threads=threads)
            log.info("model: %s (%s)", choice.label, choice.reason)
            _MODELS[key] = model
        return model
