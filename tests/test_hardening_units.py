"""Small pure pieces of issue 11: output file modes, messages without server paths, strict form values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from midiscribe.formats.atomic import atomic_path
from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.schemas import ConversionRequest
from midiscribe.service.redact import public_message


def test_outputs_get_0666_less_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "song.mid") as tmp:
            tmp.write_bytes(b"MThd")
    finally:
        os.umask(old)
    assert (tmp_path / "song.mid").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["song.mid"]


@pytest.mark.parametrize(
    ("message", "public"),
    [
        ("/tmp/midiscribe-x1/input-204: the file is empty", "input-204: the file is empty"),
        ("cannot open '/srv/data/work/h-1/task-a/input-a.wav'", "cannot open 'input-a.wav'"),
        ("the audio lasts 3600 s, over the limit of 600 s", "the audio lasts 3600 s, over the limit of 600 s"),
        (
            "example.com answered HTTP 500 for https://example.com/a/b.wav",
            "example.com answered HTTP 500 for https://example.com/a/b.wav",
        ),
    ],
)
def test_no_server_paths_in_client_messages(message: str, public: str) -> None:
    assert public_message(message) == public
    assert ApiError(422, "unsupported_audio", message).message == public


def test_form_values_are_strict() -> None:
    req = ConversionRequest.from_form({"audio_path": "https://a.com/a.wav", "sonify_midi": "0", "midi_program": "5"})
    assert req.sonify_midi is False and req.midi_program == 5
    for field, value in [
        ("sonify_midi", "yes"),
        ("sonify_midi", "TRUE"),
        ("midi_program", "5.0"),
        ("midi_tempo", "inf"),
    ]:
        with pytest.raises(ApiError) as err:
            ConversionRequest.from_form({"audio_path": "x", field: value})
        assert err.value.status == 400 and field in err.value.message
    with pytest.raises(ApiError):
        ConversionRequest.from_json({"audio_path": "x", "sonify_midi": "true"})
