"""schemathesis (property-based API testing, from PyPI) against the live /openapi.json of a real
`midiscribe serve`: every operation, positive and negative examples, with a real key, a real small
audio file in uploads and a real task id in some paths, so generated requests get past validation.
No server error, and no answer outside the document (status, content type, headers, body schema).

Bounded: MAX_EXAMPLES (75) per operation and mode, about 900 requests, 1-1.5 min on this 2-core machine."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from audiogen import encode, melody
from service_harness import Service

MAX_EXAMPLES = int(os.environ.get("MIDISCRIBE_SCHEMATHESIS_EXAMPLES", "75"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
STATS: dict[str, int] = {}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("schemathesis")
    encode(root / "tune.flac", melody([(0.1, 0.3, 60)], 0.5, sr=22_050), sr=22_050, kind="flac")
    svc = Service(
        root / "svc",
        workers=0,
        env={
            "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "1000000",
            "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "1000000",
            "MIDISCRIBE_FETCH_CONNECT_TIMEOUT_S": "1",
            "MIDISCRIBE_FETCH_READ_TIMEOUT_S": "2",
        },
    )
    key, _ = svc.create_key("schemathesis")
    svc.start()
    audio = (root / "tune.flac").read_bytes()
    r = httpx.post(
        svc.url + "/api/public/v1/audio_to_midi",
        headers={"Authorization": key},
        files={"audio_file": ("t.flac", audio)},
    )
    assert r.status_code == 200, r.text
    yield {"svc": svc, "key": key, "audio": audio, "task_id": r.json()["task_id"]}
    svc.stop()
    out = Path(os.environ.get("MIDISCRIBE_SCHEMATHESIS_REPORT", root / "figures.json"))
    out.write_text(json.dumps(STATS, indent=1))
    operations = len([k for k in STATS if not k.startswith("_")])
    examples, errors = STATS.get("_examples", 0), STATS.get("_5xx", 0)
    print(f"\nschemathesis: {operations} operations, {examples} examples, {errors} 5xx -> {out}")


OPERATIONS = [
    "POST /api/public/v1/audio_to_midi",
    "GET /api/public/v1/tasks/{task_id}",
    "DELETE /api/public/v1/tasks/{task_id}",
    "GET /api/public/v1/tasks",
    "GET /api/public/v1/models",
    "POST /api/public/v1/tasks/{task_id}/notes",
    "GET /files/{key}",
    "GET /healthz",
    "GET /readyz",
]


@pytest.fixture(scope="module")
def api_schema(live: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_url(live["svc"].url + "/openapi.json")

    @schema.hook("map_case")
    def real_inputs(_context: Any, case: Any) -> Any:
        """A real upload in every multipart case; a real task id in about half the paths."""
        if case.media_type == "multipart/form-data" and isinstance(case.body, dict):
            case.body["audio_file"] = live["audio"]
        params = case.path_parameters or {}
        if "task_id" in params and zlib.crc32(str(params["task_id"]).encode()) % 2 == 0:
            params["task_id"] = live["task_id"]
        return case

    return schema


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    found = sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations())
    assert found == sorted(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_api_matches_its_document(api_schema: Any, live: dict[str, Any], label: str, mode: GenerationMode) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode, hooks=api_schema.hooks)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        STATS[label] = STATS.get(label, 0) + 1
        STATS["_examples"] = STATS.get("_examples", 0) + 1
        headers = dict(case.headers or {})
        headers.setdefault("Authorization", live["key"])
        response = case.call(headers=headers, timeout=30)
        if response.status_code >= 500:
            STATS["_5xx"] = STATS.get("_5xx", 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:  # nothing in the operation can be invalid (no parameters, a path that takes any text)
        assert mode is GenerationMode.NEGATIVE
        pytest.skip(f"{label} has no negative inputs")
