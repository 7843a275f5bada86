"""Transkun 2.0's network on one segment of audio: samples in, note and pedal intervals out.

Transkun (Yan & Duan, ISMIR 2024; MIT code, weights ``2.0.pt`` inside the ``transkun`` 2.0.1 wheel)
scores every (onset frame, offset frame) pair of every key and pedal and decodes them with a
semi-CRF. We use its modules (feature extractor, backbone, scorer, velocity and refinement heads) as
they are, built from its own config and checkpoint, with three changes made here and checked against
Transkun's own code by ``tests/test_piano.py``:

- the mel filterbank comes from :mod:`midiscribe.core.mel` instead of torchaudio;
- the interval scores are formed in place and laid out once as (onset, offset, track), the order the
  decoder reads, instead of five full-size temporaries (each 690 x 690 x 90 floats, 171 MB, for a
  16 s segment);
- the Viterbi decode runs in numpy (the same recursion as ``viterbiBackward``), which is faster than
  the TorchScript loop of small ops on a busy CPU and needs no second copy of the scores.

torch and transkun are imported only when a network is built (the ``piano`` extra).
"""

from __future__ import annotations

import importlib.resources
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
import numpy.typing as npt

from midiscribe.core.mel import mel_filterbank
from midiscribe.errors import ModelError, ModelWeightsMissingError

SAMPLE_RATE = 44_100
HOP_SAMPLES = 1024
TRACKS: tuple[int, ...] = (-64, -67, *range(21, 109))
"""What each decoded track is: sustain pedal (CC64), soft pedal (CC67), then the 88 keys A0..C8."""

INSTALL_HINT = "pip install 'midiscribe[piano]'"


@dataclass(slots=True)
class Event:
    """One decoded interval in seconds from the segment's first sample (mutable while merging)."""

    start_s: float
    end_s: float
    track: int
    velocity: int
    has_onset: bool
    has_offset: bool


def load_network(*, quantize: bool = True) -> Any:
    """Transkun 2.0 from the installed wheel, in eval mode, optionally with int8 linear layers."""
    try:
        import torch

        with warnings.catch_warnings():  # transkun decorates its CRF with torch.jit.script, deprecated
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit.*")
            from transkun import ModelTransformer, Util
    except ImportError as exc:
        raise ModelError(f"the piano model needs torch and transkun ({exc}): {INSTALL_HINT}") from exc

    class MelSpectrum(Util.MelSpectrum):  # type: ignore[misc]
        """Transkun's feature extractor with our filterbank (its own ``__init__`` imports torchaudio)."""

        def __init__(
            self,
            windowSize: int,
            f_min: float,
            f_max: float,
            n_mels: int,
            fs: int,
            nExtraWins: int = 0,
            log: bool = False,
            eps: float = 1e-5,
            toMono: bool = False,
        ) -> None:
            torch.nn.Module.__init__(self)
            self.outputDim = n_mels
            self.nChannel = nExtraWins + 1
            bank = mel_filterbank(windowSize // 2 + 1, f_min, f_max, n_mels, fs)
            self.register_buffer("freq2mels", torch.from_numpy(bank))
            self.log = log
            self.eps = eps
            self.spectrogramExtractor = Util.Spectrum(windowSize, nExtraWins)
            self.toMono = toMono

    root = importlib.resources.files("transkun") / "pretrained"
    try:
        settings = json.loads((root / "2.0.conf").read_text())["Model"]["config"]
        with (root / "2.0.pt").open("rb") as handle:
            state = torch.load(handle, map_location="cpu", weights_only=True)["state_dict"]
    except (OSError, KeyError, ValueError) as exc:
        raise ModelWeightsMissingError(f"Transkun's 2.0 weights could not be read ({exc}): {INSTALL_HINT}") from exc
    conf = ModelTransformer.Config()
    conf.__dict__.update(settings)
    with mock.patch.object(ModelTransformer, "MelSpectrum", MelSpectrum):
        net = ModelTransformer.TransKun(conf=conf)
    net.load_state_dict(state, strict=True)
    net.eval()
    net.backbone.useGradientCheckpoint = False  # it is checked before ``training``: a no-op wrapper at best
    if int(net.fs) != SAMPLE_RATE or int(net.hopSize) != HOP_SAMPLES or tuple(net.targetMIDIPitch) != TRACKS:
        raise ModelError("unexpected Transkun configuration (sample rate, hop or tracks changed)")
    if quantize:
        net = _quantized(net)
    return net


def _quantized(net: Any) -> Any:
    """Dynamic int8 weights for the heavy linear layers (activations quantized per call).

    The transformer layers, the interval scorer's projection and the two heads: nearly all the
    network's multiply-adds outside the convolutions. The positional-embedding MLPs stay float
    (Transkun reads their ``proj.weight.device``, and they run on a few hundred coordinates).
    torch marks its quantized-tensor constructors deprecated; the warning says nothing about us.
    """
    import torch

    def q(module: Any) -> Any:
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*", category=UserWarning)
        net.backbone.encoderLayers = q(net.backbone.encoderLayers)
        net.scorer.map = q(net.scorer.map)
        net.velocityPredictor = q(net.velocityPredictor)
        net.refinedOFPredictor = q(net.refinedOFPredictor)
    return net


def decode_segment(
    net: Any, samples: npt.NDArray[np.float32], forced_start: list[int], *, bf16: bool = False
) -> tuple[list[Event], list[int]]:
    """Intervals of one segment of mono 44.1 kHz samples, and each track's last closed offset frame.

    ``forced_start[k]`` is the frame where track ``k``'s decode starts (what the previous segment
    already settled), as Transkun's ``transcribeFrames(forcedStartPos=...)``. ``bf16`` runs the
    backbone under bfloat16 autocast (the scores and heads stay float32).
    """
    import torch
    import torch.nn.functional as F
    from transkun.Util import makeFrame

    with torch.inference_mode():
        frames = makeFrame(torch.from_numpy(samples)[None], HOP_SAMPLES, int(net.windowSize)).unsqueeze(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ctx = _context(net, frames)
        ctx = ctx.float()
        scores = interval_scores(net.scorer, ctx)
        last_frame = round(samples.size / HOP_SAMPLES)
        paths = viterbi(scores, forced_start)
        del scores
        n_intervals = sum(len(p) for p in paths)
        if n_intervals == 0:
            return [], [0] * len(TRACKS)
        ctx_a, ctx_b, _, _ = net.fetchIntervalFeaturesBatch(ctx, [paths])
        features = torch.cat([ctx_a, ctx_b, ctx_a * ctx_b], dim=-1)
        velocity = torch.argmax(F.softmax(net.velocityPredictor(features), dim=-1), dim=-1).tolist()
        refine_logits, presence_logits = net.refinedOFPredictor(features).chunk(2, dim=-1)
        mean = torch.distributions.ContinuousBernoulli(logits=refine_logits).mean
        refine = torch.clamp((mean - 0.5) / 0.99, -0.5, 0.5).tolist()
        presence = (presence_logits > 0).tolist()
    return _events(paths, velocity, refine, presence, last_frame)


def _context(net: Any, frames: Any) -> Any:
    """``processFramesBatch`` up to the backbone's output: (1, tracks, frames, features)."""
    import torch

    mean = torch.mean(frames, dim=[1, 2, 3], keepdim=True)
    std = torch.std(frames, dim=[1, 2, 3], keepdim=True)
    features = net.framewiseFeatureExtractor((frames - mean) / (std + 1e-8)).contiguous()
    features = features.view(frames.shape[0], *features.shape[-3:])
    return net.backbone(features, outputIndices=torch.tensor(TRACKS))


def interval_scores(scorer: Any, ctx: Any) -> npt.NDArray[np.float32]:
    """``ScaledInnerProductIntervalScorer`` scores as a (onset, offset, track) float32 array.

    The same arithmetic as its ``forward`` (inner products scaled by interval length, plus a
    per-frame singleton score on the diagonal), done in place; its skip scores are all zero.
    """
    import torch

    size = scorer.size * scorer.expansionFactor
    q, k, diag = scorer.map(ctx).split([size, size, 1], dim=-1)
    q = q / math.sqrt(q.shape[-1])
    s = torch.einsum("iped, ipbd-> ipeb", q, k)  # (batch, track, offset e, onset b)
    del q, k
    n = s.shape[-1]
    idx = torch.arange(n)
    s.mul_((idx.unsqueeze(-1) - idx.unsqueeze(0)).abs())
    s.diagonal(dim1=-2, dim2=-1).add_(diag.squeeze(-1))
    out: npt.NDArray[np.float32] = s[0].permute(2, 1, 0).contiguous().numpy()  # (onset, offset, track)
    return out


def viterbi(score_t: npt.NDArray[np.float32], forced_start: list[int]) -> list[list[tuple[int, int]]]:
    """Best non-overlapping intervals per track: Transkun's ``viterbiBackward`` in numpy.

    ``score_t[b, e, k]`` scores an interval from frame ``b`` to frame ``e`` on track ``k``;
    the diagonal scores single-frame events (taken when positive). Skips score zero.
    """
    n, _, tracks = score_t.shape
    q = np.zeros((n, tracks), dtype=np.float32)
    diag = np.ascontiguousarray(np.diagonal(score_t, axis1=0, axis2=1).T)  # (frame, track)
    singles = diag > 0
    q[n - 1] = np.where(singles[n - 1], diag[n - 1], 0.0)
    choice = np.full((n, tracks), -1, dtype=np.int32)  # per onset frame: -1 skip, else offset - onset - 1
    for t in range(n - 2, -1, -1):
        candidates = q[t + 1 :] + score_t[t, t + 1 :]
        best = np.argmax(candidates, axis=0)
        take = candidates[best, np.arange(tracks)]
        skip = q[t + 1]
        use = take > skip  # ties go to the skip, as torch.max over [skip, intervals...] picks the first
        choice[t] = np.where(use, best, -1)
        q[t] = np.where(use, take, skip) + np.where(singles[t], diag[t], 0.0)
    paths: list[list[tuple[int, int]]] = []
    for k in range(tracks):
        j, path = forced_start[k], []
        while j < n - 1:
            if singles[j, k]:
                path.append((j, j))
            c = int(choice[j, k])
            if c < 0:
                j += 1
            else:
                path.append((j, j + c + 1))
                j = j + c + 1
        if singles[n - 1, k]:
            path.append((n - 1, n - 1))
        paths.append(path)
    return paths


def _events(
    paths: list[list[tuple[int, int]]],
    velocity: list[int],
    refine: list[list[float]],
    presence: list[list[bool]],
    last_frame: int,
) -> tuple[list[Event], list[int]]:
    """Intervals to timed events, as the end of Transkun's ``transcribeFrames``."""
    frame_s = HOP_SAMPLES / SAMPLE_RATE
    events: list[Event] = []
    last_closed: list[int] = []
    i = 0
    for track, path in zip(TRACKS, paths, strict=True):
        last_end, closed = 0.0, 0
        for onset, offset in path:
            start = max((onset + refine[i][0]) * frame_s, last_end)
            end = max((offset + refine[i][1]) * frame_s, start + 1e-8)
            last_end = end
            has_offset = offset < last_frame or presence[i][1]
            events.append(Event(start, end, track, int(velocity[i]), onset > 0 or presence[i][0], has_offset))
            if has_offset:
                closed = offset
            i += 1
        last_closed.append(closed)
    return events, last_closed
