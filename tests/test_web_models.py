"""The Explorer's model selector: filled from GET /models, sent as ``model``, shown on the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audiogen import encode
from midiscribe.core.registry import MODELS
from test_models import SR, glide_melody
from web_support import WebTasks, new_page, note_count


@pytest.mark.skipif(not MODELS["mono"].installed(), reason=f"mono extra missing: {MODELS['mono'].install_hint}")
def test_choose_the_mono_model_and_see_its_notes(browser: Any, web_tasks: WebTasks, tmp_path: Path) -> None:
    svc, key = web_tasks.svc, web_tasks.key
    page, errors = new_page(browser, svc, key)
    page.wait_for_selector("#model-row:not([hidden])")
    options = page.eval_on_selector_all("#model option", "os => os.map(o => [o.value, o.disabled])")
    assert [name for name, _ in options] == list(MODELS)
    assert dict(options)["mono"] is False and page.input_value("#model") == "general"  # the default
    page.select_option("#model", "mono")
    assert "LGPL-3.0" in page.text_content("#model-note")

    recording = encode(tmp_path / "glide.flac", glide_melody(), sr=SR, kind="flac")
    page.set_input_files("#file", str(recording))
    page.uncheck("#sonify")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    page.wait_for_function("Number(document.getElementById('note-count').dataset.count) > 0")
    task_id = page.text_content("#task-id")
    assert task_id
    task = web_tasks.status(task_id)
    assert task["options"]["model"] == "mono" and note_count(page) == task["result"]["n_notes"] == 4
    assert page.text_content("#result-model") == "Model: mono"
    assert page.is_disabled("#r-onset") and page.is_disabled("#r-frame")  # thresholds are the general model's
    pitches = page.evaluate("window.explorer.store.notes.map(n => n.pitch)")
    assert pitches[0] == 60 and pitches[-1] == 69
    assert not errors
