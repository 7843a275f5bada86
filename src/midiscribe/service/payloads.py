"""The documented response and webhook bodies, built in one place."""

from __future__ import annotations

from typing import Any

from midiscribe.service.outside.storage import ObjectStore

CONVERSION_TYPE = "Audio to MIDI"
QUEUED_MESSAGE = "MIDI conversion task queued successfully"
DONE_MESSAGE = "Audio to Midi Completed"
CANCELLED_MESSAGE = "Audio to Midi Cancelled"


def file_urls(result: dict[str, Any] | None, store: ObjectStore) -> dict[str, str]:
    """The three documented URL fields ("" when not produced)."""
    result = result or {}

    def url(name: str) -> str:
        key = result.get(name)
        return store.url(key) if key else ""

    return {"midi_file_path": url("midi"), "sonify_file_path": url("wav"), "notes_file_path": url("csv")}


def notation_urls(result: dict[str, Any] | None, store: ObjectStore) -> dict[str, Any]:
    """Links to the MusicXML and score pages, present only when the request asked for them.

    The documented webhook keys stay exactly as they are for requests that did not.
    """
    result = result or {}
    urls: dict[str, Any] = {}
    if result.get("musicxml"):
        urls["musicxml_file_path"] = store.url(result["musicxml"])
        urls["mxl_file_path"] = store.url(result["mxl"]) if result.get("mxl") else ""
    if result.get("score"):
        urls["score_file_paths"] = [store.url(key) for key in result["score"]]
    return urls


def success_payload(row: Any, result: dict[str, Any], store: ObjectStore) -> dict[str, Any]:
    return {
        "success": True,
        "conversion_type": CONVERSION_TYPE,
        "task_id": row.id,
        "conversion_id": row.conversion_id,
        **file_urls(result, store),
        **notation_urls(result, store),
        "message": DONE_MESSAGE,
    }


def failure_payload(row: Any, code: str, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "conversion_type": CONVERSION_TYPE,
        "task_id": row.id,
        "conversion_id": row.conversion_id,
        "midi_file_path": "",
        "sonify_file_path": "",
        "notes_file_path": "",
        "message": f"Audio to Midi Failed: {message}",
        "error": {"code": code, "message": message},
    }


def cancelled_payload(row: Any) -> dict[str, Any]:
    """A cancelled task's webhook: the failure shape, saying so in ``message`` and ``error.code``."""
    payload = failure_payload(row, "task_cancelled", "the task was cancelled by its owner")
    payload["message"] = CANCELLED_MESSAGE
    return payload


def error_body(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if request_id:
        error["request_id"] = request_id
    return {"success": False, "error": error}
