"""Encode a rendered WAV as FLAC, Opus (in Ogg) or MP3 with PyAV, for a smaller sonified file.

The format follows the target's extension: ``.flac`` (lossless, about half the size of WAV),
``.opus`` (96 kbit/s, about a fifteenth) or ``.mp3`` (128 kbit/s, about a tenth).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from midiscribe.errors import OptionsError
from midiscribe.formats.atomic import atomic_path

# extension -> (container, codec, sample format, bit rate or None, sample rate or None: the input's)
_CODECS: dict[str, tuple[str, str, str, int | None, int | None]] = {
    ".flac": ("flac", "flac", "s16", None, None),
    ".opus": ("ogg", "libopus", "flt", 96_000, 48_000),  # Opus runs at 48 kHz
    ".mp3": ("mp3", "libmp3lame", "fltp", 128_000, None),
}
FORMATS = tuple(ext.lstrip(".") for ext in _CODECS)


def encode_audio(wav: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Encode the WAV file ``wav`` to ``target`` (written atomically), in the format its extension names."""
    import av

    target = Path(target)
    if target.suffix not in _CODECS:
        raise OptionsError(f"cannot encode to {target.suffix!r}: use one of {', '.join(FORMATS)}")
    container_fmt, codec, sample_fmt, bit_rate, rate = _CODECS[target.suffix]
    with av.open(os.fspath(wav)) as source, atomic_path(target) as tmp:
        in_stream = source.streams.audio[0]
        out_rate = rate or int(in_stream.codec_context.sample_rate)
        with av.open(str(tmp), "w", format=container_fmt) as out:
            stream: Any = out.add_stream(codec, rate=out_rate)
            stream.layout = "mono"
            if bit_rate:
                stream.bit_rate = bit_rate
            resampler = av.AudioResampler(format=sample_fmt, layout="mono", rate=out_rate)
            for frame in source.decode(in_stream):
                for converted in resampler.resample(frame):
                    for packet in stream.encode(converted):
                        out.mux(packet)
            for converted in resampler.resample(None):
                for packet in stream.encode(converted):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
