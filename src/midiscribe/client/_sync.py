"""``Client`` and its ``Task``: the blocking client (httpx.Client), safe to share between threads."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx

from midiscribe.client import _common as c
from midiscribe.client import _errors as e
from midiscribe.client._types import FileKind, ModelInfo, TaskInfo
from midiscribe.core.results import Note, Transcription
from midiscribe.errors import WaitTimeoutError

log = logging.getLogger("midiscribe.client")

Progress = Callable[[TaskInfo], object]
"""Called with the task's status whenever its status or progress changes while waiting."""


class Client:
    """A midiscribe (or compatible) service at ``base_url``, used with ``api_key``.

    Both default to ``MIDISCRIBE_URL`` and ``MIDISCRIBE_API_KEY``. ``timeout_s`` bounds each
    request (uploads: each read and write); 429, 503 and connection failures are retried
    ``max_retries`` times, after the answer's ``Retry-After``. Use as a context manager, or
    call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = c.base_url_from(base_url)
        self._key = c.api_key_from(api_key)
        self.retry = e.RetryPolicy(max_retries=max_retries, max_wait_s=max_retry_wait_s)
        self._http = httpx.Client(timeout=timeout_s, headers=c.default_headers(), transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # ----------------------------------------------------------------------------- requests

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        body: Callable[[], dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        authorized: bool = True,
    ) -> httpx.Response:
        """One API call with retries; an error answer raises its exception (``midiscribe.errors``).

        ``path`` is relative to the base URL (``/api/public/v1/...``) or a full URL. ``body``
        builds the request's keyword arguments for httpx afresh for each try (a file is re-read).
        """
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        sent = dict(headers or {})
        if authorized and self._key:
            sent["authorization"] = self._key
        attempt = 0
        while True:
            try:
                kwargs = body() if body else {}
                extra_headers = kwargs.pop("headers", {})
                response = self._http.request(method, url, headers=sent | extra_headers, params=params, **kwargs)
            except httpx.TransportError as exc:
                wait = self.retry.after_error(attempt, exc, idempotent)
                if wait is None:
                    raise e.connection_error(exc, url) from exc
                log.info("%s %s: %s; retrying in %.1f s", method, url, type(exc).__name__, wait)
            else:
                if response.is_success:
                    return response
                wait = self.retry.after_response(attempt, response)
                if wait is None:
                    raise e.error_for(response, keyless=authorized and not self._key)
                log.info("%s %s: HTTP %d; retrying in %.1f s", method, url, response.status_code, wait)
            attempt += 1
            time.sleep(wait)

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    # ------------------------------------------------------------------------------- calls

    def submit(
        self,
        source: str | os.PathLike[str] | bytes | Any,
        *,
        filename: str | None = None,
        idempotency_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Task:
        """Queue a conversion of ``source``: a path, an ``http(s)://`` URL, an ``s3://`` location,
        bytes, or a binary file object. ``options`` are the API's fields (``preset="piano"``,
        ``onset_threshold=0.5``, ``save_musicxml=True``, ``webhook_url=...``; README).

        A new ``Idempotency-Key`` is sent (or yours), so a retried submit never makes two tasks.
        """
        sub = c.submission(source, options, extra, filename)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        start = sub.stream.tell() if sub.stream is not None and sub.stream.seekable() else None
        stream_data: bytes | None = None
        if sub.stream is not None and start is None:  # not seekable: read once, so a retry can resend it
            stream_data = sub.stream.read()
        handles: list[Any] = []

        def body() -> dict[str, Any]:
            if not sub.upload:
                return {"json": sub.json_body()}
            for h in handles:
                h.close()
            handles.clear()
            content: Any
            if sub.path is not None:
                content = sub.path.open("rb")
                handles.append(content)
            elif sub.stream is not None and start is not None:
                sub.stream.seek(start)
                content = sub.stream
            else:
                content = sub.data if sub.data is not None else stream_data
            return {
                "data": sub.form_fields(),
                "files": {"audio_file": (sub.filename, content, "application/octet-stream")},
            }

        try:
            answer = self._json("POST", c.API + "/audio_to_midi", body=body, headers=headers)
        finally:
            for h in handles:
                h.close()
        return Task(self, c.queued_info(answer))

    def task(self, task_id: str) -> Task:
        """A handle on an existing task (nothing is requested until you use it)."""
        return Task(self, None, task_id=task_id)

    def status(self, task_id: str) -> TaskInfo:
        return c.task_info(self._json("GET", c.task_path(task_id)), self.base_url)

    def cancel(self, task_id: str) -> TaskInfo:
        """Cancel a queued or running task and delete its files (``DELETE``); on a finished task,
        only delete its files. Answers the status after."""
        return c.task_info(self._json("DELETE", c.task_path(task_id)), self.base_url)

    def retune(self, task_id: str, **options: Any) -> Transcription:
        """A completed task's notes re-derived with other options (no model run, well under a second)."""
        fields = c.checked_options(options, c.RETUNE_NAMES, "retune")
        body = self._json("POST", c.task_path(task_id, "/notes"), body=lambda: {"json": fields})
        return c.transcription(body)

    def retune_file(
        self, task_id: str, path: str | os.PathLike[str], *, format: Literal["midi", "csv"] = "midi", **options: Any
    ) -> Path:
        """Write the re-tuned MIDI (or CSV) to ``path``."""
        fields = c.checked_options(options, c.RETUNE_NAMES, "retune")
        response = self.request(
            "POST", c.task_path(task_id, "/notes"), params={"format": format}, body=lambda: {"json": fields}
        )
        return _write_atomic(Path(path), [response.content])

    def list_tasks(self, *, page_size: int = 50, limit: int | None = None) -> Iterator[Task]:
        """This key's tasks, newest first, a page (``page_size``, at most 100) at a time.

        A task submitted meanwhile shifts the pages; no task is answered twice."""
        seen: set[str] = set()
        offset = 0
        while limit is None or len(seen) < limit:
            page = self._json("GET", f"{c.API}/tasks", params={"limit": min(page_size, 100), "offset": offset})
            tasks = page.get("tasks") or []
            for item in tasks:
                info = c.task_info(item, self.base_url)
                if info.task_id in seen:
                    continue
                seen.add(info.task_id)
                yield Task(self, info)
                if limit is not None and len(seen) >= limit:
                    return
            offset += len(tasks)
            if not tasks or offset >= int(page.get("total") or 0):
                return

    def models(self) -> list[ModelInfo]:
        """The models the service can transcribe with (``GET /api/public/v1/models``)."""
        return c.model_infos(self._json("GET", c.API + "/models"))

    def fetch(self, url: str, target: Path) -> Path:
        """Download a result link (signed: sent without the API key) to ``target``, atomically."""
        with self._stream(url) as response:
            return _write_atomic(target, response.iter_bytes())

    def fetch_bytes(self, url: str) -> bytes:
        return self.request("GET", url, authorized=False).content

    def _stream(self, url: str) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.send(self._http.build_request("GET", url), stream=True)
            except httpx.TransportError as exc:
                wait = self.retry.after_error(attempt, exc, True)
                if wait is None:
                    raise e.connection_error(exc, url) from exc
            else:
                if response.is_success:
                    return _Closing(response)
                response.read()
                response.close()
                wait = self.retry.after_response(attempt, response)
                if wait is None:
                    raise e.error_for(response)
            attempt += 1
            time.sleep(wait)


class _Closing:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _write_atomic(target: Path, chunks: Any) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with tmp.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class Task:
    """A submitted task: its id, its last known status (``info``), and what can be done with it."""

    def __init__(self, client: Client, info: TaskInfo | None, *, task_id: str | None = None) -> None:
        self.client = client
        self.info = info
        self.id: str = info.task_id if info is not None else str(task_id)

    def __repr__(self) -> str:
        state = f"{self.info.status} {self.info.progress}%" if self.info else "unknown"
        return f"Task({self.id!r}, {state})"

    @property
    def status(self) -> str | None:
        return self.info.status if self.info else None

    def refresh(self) -> TaskInfo:
        self.info = self.client.status(self.id)
        return self.info

    def wait(
        self,
        timeout: float | None = None,
        *,
        progress: Progress | None = None,
        poll_interval_s: float = 0.25,
        max_poll_interval_s: float = 5.0,
    ) -> TaskInfo:
        """Poll until the task is finished; answer its status when completed.

        Polls start every ``poll_interval_s`` and back off (x1.5) to ``max_poll_interval_s`` while
        nothing changes; a 429 or 503 is waited out per its ``Retry-After``. A failed task raises
        its error (``AudioTooLongError``, ``TaskFailedError``, ...; ``exc.task_id``), a cancelled one
        ``TaskCancelledError``; ``timeout`` (seconds) passing raises ``WaitTimeoutError``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval, last = poll_interval_s, None
        while True:
            info = self.refresh()
            seen = (info.status, info.progress)
            if progress is not None and seen != last:
                progress(info)
            interval = interval if seen != last else min(max_poll_interval_s, interval * 1.5)
            last = seen
            if info.finished:
                if info.status == "completed":
                    return info
                raise e.task_error(info)
            if deadline is not None and time.monotonic() >= deadline:
                exc = WaitTimeoutError(f"task {self.id} is still {info.status} ({info.progress}%) after {timeout} s")
                exc.task_id = self.id
                raise exc
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)

    def download(
        self,
        directory: str | os.PathLike[str] = ".",
        *,
        name: str | None = None,
        include: tuple[FileKind, ...] | None = None,
        overwrite: bool = False,
    ) -> list[Path]:
        """Download the result files into ``directory`` as ``<name>.mid``, ``.wav``, ``.csv``,
        ``.musicxml``, ``.mxl`` and score pages (those the task made; ``include`` picks kinds, e.g.
        ``("midi", "notes")``; ``"model_outputs"`` adds the ``.npz``). ``name`` defaults to the
        input's name without its extension. Each file is written atomically."""
        info = self.info if self.info is not None and self.info.finished else self.refresh()
        plan = c.download_plan(info, directory, name=name, include=include, overwrite=overwrite)
        return [self.client.fetch(url, path) for url, path in plan]

    def notes(self) -> list[Note]:
        """The task's notes as the library's ``Note`` objects (from its notes CSV, or, when it has
        none, from the re-tune endpoint with the task's own options)."""
        from midiscribe.formats.notes_csv import read_notes_csv

        info = self.info if self.info is not None and self.info.status == "completed" else self.refresh()
        result = c.completed_result(info)
        if result.notes_url:
            import io

            text = self.client.fetch_bytes(result.notes_url).decode("utf-8")
            return read_notes_csv(io.StringIO(text, newline=""))
        return list(self.retune().notes)

    def retune(self, **options: Any) -> Transcription:
        return self.client.retune(self.id, **options)

    def retune_file(
        self, path: str | os.PathLike[str], *, format: Literal["midi", "csv"] = "midi", **options: Any
    ) -> Path:
        return self.client.retune_file(self.id, path, format=format, **options)

    def cancel(self) -> TaskInfo:
        self.info = self.client.cancel(self.id)
        return self.info
