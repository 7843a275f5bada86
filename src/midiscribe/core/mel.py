"""A mel filterbank in numpy (HTK mel scale, triangular, unnormalized).

The same matrix as ``torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels,
sample_rate)`` with its defaults (``norm=None``, ``mel_scale="htk"``), so that the piano model can be
built without torchaudio, whose wheels are linked against one build of torch and fail to import
beside another (issue 10). ``tests/test_piano.py`` checks it against the filterbank stored in
Transkun's checkpoint.
"""

from __future__ import annotations

import numpy as np

from midiscribe.core.frames import FloatArray

__all__ = ["hz_to_mel", "mel_filterbank", "mel_to_hz"]


def hz_to_mel(hz: FloatArray | float) -> FloatArray:
    """HTK mel: 2595 log10(1 + f / 700)."""
    return np.asarray(2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0))


def mel_to_hz(mel: FloatArray | float) -> FloatArray:
    return np.asarray(700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0))


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> FloatArray:
    """(n_freqs, n_mels) float32: column ``m`` is the triangle of mel band ``m`` over the FFT bins.

    ``n_freqs`` bins spread evenly from 0 to ``sample_rate // 2`` Hz (an rfft of ``2 * (n_freqs - 1)``
    points); band edges are ``n_mels + 2`` points evenly spaced in mel from ``f_min`` to ``f_max``.
    """
    if n_freqs < 2 or n_mels < 1 or not 0 <= f_min < f_max:
        raise ValueError(f"bad filterbank shape: {n_freqs} bins, {n_mels} bands, {f_min}-{f_max} Hz")
    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    f_pts = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[np.newaxis, :] - all_freqs[:, np.newaxis]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    bank: FloatArray = np.maximum(0.0, np.minimum(down, up)).astype(np.float32)
    return bank
