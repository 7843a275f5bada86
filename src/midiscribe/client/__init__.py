"""A Python client for the midiscribe API (and the audio_to_midi API it is compatible with).

    from midiscribe.client import Client

    with Client("http://127.0.0.1:8000", "KEY") as client:    # or MIDISCRIBE_URL / MIDISCRIBE_API_KEY
        task = client.submit("song.mp3", preset="piano")     # a path, a URL, s3://..., bytes, a file
        task.wait(timeout=600, progress=lambda t: print(t.progress))
        task.download("out/")                                # song.mid, song.wav, song.csv
        notes = task.notes()                                 # midiscribe.Note objects

:class:`AsyncClient` has the same calls, awaited. Errors are the library's own classes
(``midiscribe.errors``): a 413 raises ``InputTooLargeError`` with the service's message, a 401
``AuthenticationError``, a task that failed its own error; every one carries ``status``, ``code``
and ``request_id``. 429, 503 and dropped connections are retried after ``Retry-After``.

Importing this loads httpx and the small pure parts of midiscribe (notes, errors), never the
engine (numpy, onnxruntime, PyAV) or the service (FastAPI, SQLAlchemy).
"""

from __future__ import annotations

from midiscribe.client._async import AsyncClient, AsyncProgress, AsyncTask
from midiscribe.client._common import OPTION_NAMES
from midiscribe.client._errors import ERROR_CODES, RetryPolicy
from midiscribe.client._sync import Client, Progress, Task
from midiscribe.client._types import (
    ENV_KEY,
    ENV_URL,
    FILE_KINDS,
    FileKind,
    ModelInfo,
    TaskErrorInfo,
    TaskInfo,
    TaskResult,
    TaskStatus,
)

__all__ = [
    "ENV_KEY",
    "ENV_URL",
    "ERROR_CODES",
    "FILE_KINDS",
    "OPTION_NAMES",
    "AsyncClient",
    "AsyncProgress",
    "AsyncTask",
    "Client",
    "FileKind",
    "ModelInfo",
    "Progress",
    "RetryPolicy",
    "Task",
    "TaskErrorInfo",
    "TaskInfo",
    "TaskResult",
    "TaskStatus",
]
