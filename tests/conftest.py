from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def eval_items() -> list[dict[str, Any]]:
    manifest = EVAL / "manifest.json"
    if not manifest.exists():
        pytest.fail(f"{manifest} is missing: the evaluation set must sit beside the project in ../shared")
    items: list[dict[str, Any]] = json.loads(manifest.read_text())
    for item in items:
        item["audio_path"] = EVAL / item["audio"]
        item["reference_csv_path"] = EVAL / item["reference_csv"]
    return items


# The Endpoint Explorer's browser tests share one server, one browser and their tasks (session-scoped).
from web_support import browser, web_service, web_tasks  # noqa: E402, F401
