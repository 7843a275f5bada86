"""The models midiscribe can transcribe with, and the one interface they share.

Each entry names its factory as ``"module:Class"`` so that nothing heavy is imported until a
model is used: ``general`` (basic-pitch on onnxruntime, the default, always installed), ``piano``
(Transkun, pedal and velocities; the ``piano`` extra) and ``mono`` (a monophonic pitch tracker
turned into notes; the ``mono`` extra). The CLI, the API, ``GET /models`` and the Explorer all
read this one table (issue 10).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from midiscribe.core.results import NoteOptions, Transcription
from midiscribe.core.transcribe import Audio, Progress
from midiscribe.errors import ModelNotInstalledError, UnknownModelError

DEFAULT_MODEL = "general"


@runtime_checkable
class NoteModel(Protocol):
    """Audio in, notes out (and pedal events where the model hears them)."""

    name: str

    def transcribe(
        self,
        audio: Audio,
        options: NoteOptions | None = None,
        *,
        sample_rate: int | None = None,
        max_duration_s: float | None = None,
        progress: Progress | None = None,
    ) -> Transcription: ...


@dataclass(frozen=True)
class ModelSpec:
    """One selectable model: what it is, what it needs, and where its class lives."""

    name: str
    description: str
    extra: str | None
    """The pip extra that installs it; None for the general model (always installed)."""
    licence: str
    """The terms of the code and the weights, in plain words."""
    requires: tuple[str, ...]
    """Importable module names the model needs."""
    factory: str
    """``"module:Class"``; the class is built with no arguments."""
    no_deps: tuple[str, ...] = ()
    """Packages installed after the extra with ``pip install --no-deps`` (their declared dependencies
    would pull a CUDA-built torchaudio that does not load beside the CPU torch)."""

    def installed(self) -> bool:
        """Whether every required module can be found, without importing any of them."""
        for module in self.requires:
            try:
                if importlib.util.find_spec(module) is None:
                    return False
            except (ImportError, ValueError):
                return False
        return True

    @property
    def install_hint(self) -> str:
        """The command that installs this model's extra."""
        if self.extra is None:
            return "pip install midiscribe"
        hint = f"pip install 'midiscribe[{self.extra}]'"
        if self.no_deps:
            hint += f" && pip install --no-deps {' '.join(self.no_deps)}"
        return hint


class GeneralModel:
    """basic-pitch for any instrument: the default model (``core.transcribe.transcribe``)."""

    name = "general"

    def transcribe(
        self,
        audio: Audio,
        options: NoteOptions | None = None,
        *,
        sample_rate: int | None = None,
        max_duration_s: float | None = None,
        progress: Progress | None = None,
    ) -> Transcription:
        from midiscribe.core.transcribe import transcribe

        return transcribe(audio, options, sample_rate=sample_rate, max_duration_s=max_duration_s, progress=progress)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="general",
            description="Any instrument, polyphonic: Spotify's basic-pitch (ICASSP 2022) on onnxruntime.",
            extra=None,
            licence="Apache-2.0 code and weights.",
            requires=("onnxruntime",),
            factory="midiscribe.core.registry:GeneralModel",
        ),
        ModelSpec(
            name="piano",
            description="Solo piano with sustain pedal and velocities: Transkun 2.0 (slow on CPU).",
            extra="piano",
            licence=(
                "Transkun code is MIT; its weights were trained on MAESTRO, whose terms are CC BY-NC-SA 4.0 "
                "(non-commercial, share-alike): whether those terms bind the weights is for you to judge."
            ),
            requires=("torch", "transkun"),
            factory="midiscribe.core.piano:PianoModel",
            no_deps=("transkun==2.0.1",),
        ),
        ModelSpec(
            name="mono",
            description=(
                "One voice or lead line (singing, winds, strings, bass): PESTO pitch tracking turned into notes, "
                "glides and vibrato as pitch bends, a confidence per note."
            ),
            extra="mono",
            licence=(
                "PESTO (Sony CSL) code and its bundled weights are LGPL-3.0: free to use, also commercially; "
                "changes to PESTO itself must be shared under the same licence. Weights trained on MIR-1K."
            ),
            requires=("torch", "pesto", "omegaconf"),
            factory="midiscribe.core.mono:MonoModel",
            no_deps=("pesto-pitch==2.0.1",),
        ),
    )
}

_LOCK = threading.Lock()
_LOADED: dict[str, NoteModel] = {}


def model_spec(name: str) -> ModelSpec:
    """The entry of that name; :class:`UnknownModelError` lists the valid ones."""
    spec = MODELS.get(name)
    if spec is None:
        valid = tuple(MODELS)
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(valid)}", valid=valid)
    return spec


def get_model(name: str = DEFAULT_MODEL) -> NoteModel:
    """The process-wide instance of that model, built on first use and then reused.

    Raises :class:`UnknownModelError` for a name not in :data:`MODELS` and
    :class:`ModelNotInstalledError` (with the pip command) when its extra is missing.
    """
    spec = model_spec(name)
    with _LOCK:
        model = _LOADED.get(name)
        if model is not None:
            return model
        if not spec.installed():
            raise ModelNotInstalledError(
                f"the {name} model is not installed: {spec.install_hint}", model=name, install_hint=spec.install_hint
            )
        module_name, _, class_name = spec.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelNotInstalledError(
                f"the {name} model could not be imported ({exc}): {spec.install_hint}",
                model=name,
                install_hint=spec.install_hint,
            ) from exc
        model = getattr(module, class_name)()
        if not isinstance(model, NoteModel):
            raise TypeError(f"{spec.factory} does not implement NoteModel")
        _LOADED[name] = model
        return model
