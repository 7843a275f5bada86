"""The ``mono`` model: one voice or lead line, basic-pitch's notes arbitrated by PESTO's pitch track.

Two models, each doing what it is best at (measured on the eval set's monophonic items; README):

- basic-pitch (the general model) places onsets and ends well, repeated notes included, but on a
  single line it also writes harmonics, octave ghosts and bleed as extra notes;
- PESTO (Riou et al., ISMIR 2023; ``pesto-pitch`` 2.0.1, LGPL-3.0, weights inside the wheel) tracks
  the one pitch that sounds every 10 ms, to a few cents, but its pitch changes lead the annotated
  onsets by about 30 ms, and it does not see a repeated note.

:func:`core.melody.monophonic` keeps the candidates the tracked pitch follows, one at a time, joins
slow slides into one note, and takes bends (vibrato, slides) and each note's confidence from the
track. PESTO runs on the GPU when torch sees one.

PESTO's package imports torchaudio at its top level, only for its own file-reading CLI; the
torchaudio wheels on PyPI are built for CUDA torch and do not load beside the CPU build. So the
extra installs ``pesto-pitch`` without its declared dependencies and :func:`_load_pesto` imports
the package's model modules without running its ``__init__`` (which is all that touches
torchaudio); nothing of PESTO's code is changed or copied.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

import numpy as np
import numpy.typing as npt

from midiscribe.core.audio import load_audio, resample
from midiscribe.core.melody import F0Track, MonoOptions, monophonic
from midiscribe.core.model import load_model
from midiscribe.core.notes import notes_from_outputs
from midiscribe.core.results import NoteOptions, Transcription
from midiscribe.core.transcribe import Audio, Progress, infer
from midiscribe.errors import EmptyAudioError, ModelError

SAMPLE_RATE = 22_050  # what core.audio decodes to; PESTO's CQT takes any rate
HOP_MS = 10.0
CHECKPOINT = "mir-1k_g7"  # the wheel's default model
BLOCK_S = 10.0  # audio per model call: bounded memory on any length (30 s blocks peaked at 926 MB)
CONTEXT_S = 1.0  # audio either side of a block, so its CQT edges see real signal

_LOAD_LOCK = threading.Lock()


def _load_pesto() -> Any:
    """PESTO's ``loader.load_model``, imported without ``pesto/__init__`` (see the module doc)."""
    spec = importlib.util.find_spec("pesto")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("pesto-pitch is not installed: pip install 'midiscribe[mono]'")
    with _LOAD_LOCK:
        if "pesto.loader" in sys.modules:
            return sys.modules["pesto.loader"].load_model
        created = "pesto" not in sys.modules
        if created:
            package = types.ModuleType("pesto")
            package.__path__ = list(spec.submodule_search_locations)
            package.__package__ = "pesto"
            sys.modules["pesto"] = package
        try:
            loader = importlib.import_module("pesto.loader")
        except ImportError as exc:
            raise ModelError(f"PESTO could not be loaded ({exc}): pip install 'midiscribe[mono]'") from exc
        return loader.load_model


class MonoModel:
    """A monophonic line (voice, winds, strings, bass, lead) as notes with bends and a confidence."""

    name = "mono"

    def __init__(self, *, device: str | None = None, mono: MonoOptions | None = None) -> None:
        import torch

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.mono = mono or MonoOptions()
        load_model = _load_pesto()
        self._model = load_model(CHECKPOINT, step_size=HOP_MS, sampling_rate=SAMPLE_RATE).to(self.device)
        self._model.eval()

    def track(self, samples: npt.NDArray[np.float32], progress: Progress | None = None) -> F0Track:
        """Pitch, voicing and loudness every 10 ms of 22,050 Hz mono samples, a block at a time."""
        hop = round(SAMPLE_RATE * HOP_MS / 1000)
        n_frames = samples.size // hop + 1
        block, context = round(BLOCK_S * SAMPLE_RATE / hop) * hop, round(CONTEXT_S * SAMPLE_RATE / hop) * hop
        pitch = np.zeros(n_frames, dtype=np.float32)
        conf = np.zeros(n_frames, dtype=np.float32)
        vol = np.zeros(n_frames, dtype=np.float32)
        total_s = samples.size / SAMPLE_RATE
        for start in range(0, samples.size, block):
            lo, hi = max(0, start - context), min(samples.size, start + block + context)
            p, c, v = self._run(samples[lo:hi])
            first = (start - lo) // hop
            f0 = start // hop
            count = min(block // hop, n_frames - f0, p.size - first)
            pitch[f0 : f0 + count] = p[first : first + count]
            conf[f0 : f0 + count] = c[first : first + count]
            vol[f0 : f0 + count] = v[first : first + count]
            if progress is not None:
                progress(min(total_s, (start + block) / SAMPLE_RATE), total_s)
        return F0Track(pitch_midi=pitch, voicing=conf, power=vol, frame_period_s=HOP_MS / 1000)

    def _run(self, samples: npt.NDArray[np.float32]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            pred, conf, vol, _act = self._model(x, sr=SAMPLE_RATE, convert_to_freq=False, return_activations=True)
        return (
            pred.float().cpu().numpy().reshape(-1),
            conf.float().cpu().numpy().reshape(-1),
            vol.float().cpu().numpy().reshape(-1),
        )

    def transcribe(
        self,
        audio: Audio,
        options: NoteOptions | None = None,
        *,
        sample_rate: int | None = None,
        max_duration_s: float | None = None,
        progress: Progress | None = None,
    ) -> Transcription:
        """Notes of one line; ``options`` gives the frequency range, minimum length and whether to bend."""
        options = options or NoteOptions()
        samples = _decode(audio, sample_rate=sample_rate, max_duration_s=max_duration_s)
        total_s = samples.size / SAMPLE_RATE

        def half(offset: float) -> Progress | None:  # each model is half the work
            if progress is None:
                return None
            report = progress
            return lambda done, _total: report(offset + done / 2, total_s)

        step = SAMPLE_RATE * 10
        chunks = (samples[i : i + step] for i in range(0, samples.size, step))
        outputs = infer(chunks, load_model(), expected_s=total_s, progress=half(0.0))
        candidates = notes_from_outputs(outputs, options)
        track = self.track(samples, half(total_s / 2))
        notes = monophonic(candidates, track, options, self.mono)
        return Transcription(
            notes=notes,
            duration_s=samples.size / SAMPLE_RATE,
            frame_period_s=track.frame_period_s,
            options=options,
        )


def _decode(audio: Audio, *, sample_rate: int | None, max_duration_s: float | None) -> npt.NDArray[np.float32]:
    """The whole input as 22,050 Hz mono float32 (88 KB a second: an hour is 318 MB)."""
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise TypeError("an array of samples needs sample_rate")
        samples = resample(audio, sample_rate).astype(np.float32, copy=False)
    else:
        samples = load_audio(audio, max_duration_s=max_duration_s).astype(np.float32, copy=False)
    if samples.size == 0:
        raise EmptyAudioError("the audio holds no samples")
    return samples
