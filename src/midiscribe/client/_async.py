"""``AsyncClient`` and its ``AsyncTask``: the same calls as ``Client``, awaited (httpx.AsyncClient)."""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx

from midiscribe.client import _common as c
from midiscribe.client import _errors as e
from midiscribe.client._sync import Client
from midiscribe.client._types import FileKind, ModelInfo, TaskInfo
from midiscribe.core.results import Note, Transcription
from midiscribe.errors import WaitTimeoutError

log = logging.getLogger("midiscribe.client")

AsyncProgress = Callable[[TaskInfo], "object | Awaitable[object]"]
"""Called (and awaited, if it returns an awaitable) whenever the status or progress changes."""


class AsyncClient:
    """The asynchronous :class:`~midiscribe.client.Client`: same arguments, same calls, awaited.

    Uploads run in a thread, so the event loop never waits on the disk."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = c.base_url_from(base_url)
        self._key = c.api_key_from(api_key)
        self.retry = e.RetryPolicy(max_retries=max_retries, max_wait_s=max_retry_wait_s)
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=c.default_headers(), transport=transport)
        self._timeout_s = timeout_s
        # MockTransport serves both kinds of client; any other async transport is the async one's only.
        self._sync_transport = transport if isinstance(transport, httpx.BaseTransport) else None
        self._sync: Client | None = None
        self._lock = threading.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._sync is not None:
            self._sync.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        body: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        authorized: bool = True,
    ) -> httpx.Response:
        """One API call with retries, as :meth:`Client.request` (``body`` is awaited per try)."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        sent = dict(headers or {})
        if authorized and self._key:
            sent["authorization"] = self._key
        attempt = 0
        while True:
            try:
                kwargs = await body() if body else {}
                extra_headers = kwargs.pop("headers", {})
                response = await self._http.request(method, url, headers=sent | extra_headers, params=params, **kwargs)
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
            await asyncio.sleep(wait)

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        return (await self.request(method, path, **kw)).json()

    async def submit(
        self,
        source: str | os.PathLike[str] | bytes | Any,
        *,
        filename: str | None = None,
        idempotency_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncTask:
        """As :meth:`Client.submit`. Uploads go through a blocking client in a thread (the event
        loop never waits on the disk or the network): when a server refuses an upload early (413)
        and closes, asyncio drops the answer with the connection, where a blocking socket still
        reads it, so only this way does an oversized upload raise ``InputTooLargeError``."""
        sub = c.submission(source, options, extra, filename)
        if sub.upload:
            task = await asyncio.to_thread(
                self._uploader().submit,
                source,
                filename=filename,
                idempotency_key=idempotency_key,
                extra=extra,
                **options,
            )
            return AsyncTask(self, task.info)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        answer = await self._json("POST", c.API + "/audio_to_midi", body=_json_body(sub.json_body()), headers=headers)
        return AsyncTask(self, c.queued_info(answer))

    def _uploader(self) -> Client:
        with self._lock:
            if self._sync is None:
                self._sync = Client(self.base_url, self._key, timeout_s=self._timeout_s, transport=self._sync_transport)
                self._sync.retry = self.retry
            return self._sync

    def task(self, task_id: str) -> AsyncTask:
        return AsyncTask(self, None, task_id=task_id)

    async def status(self, task_id: str) -> TaskInfo:
        return c.task_info(await self._json("GET", c.task_path(task_id)), self.base_url)

    async def cancel(self, task_id: str) -> TaskInfo:
        return c.task_info(await self._json("DELETE", c.task_path(task_id)), self.base_url)

    async def retune(self, task_id: str, **options: Any) -> Transcription:
        fields = c.checked_options(options, c.RETUNE_NAMES, "retune")
        return c.transcription(await self._json("POST", c.task_path(task_id, "/notes"), body=_json_body(fields)))

    async def retune_file(
        self, task_id: str, path: str | os.PathLike[str], *, format: Literal["midi", "csv"] = "midi", **options: Any
    ) -> Path:
        fields = c.checked_options(options, c.RETUNE_NAMES, "retune")
        response = await self.request(
            "POST", c.task_path(task_id, "/notes"), params={"format": format}, body=_json_body(fields)
        )
        return await asyncio.to_thread(_write_bytes, Path(path), response.content)

    async def list_tasks(self, *, page_size: int = 50, limit: int | None = None) -> AsyncIterator[AsyncTask]:
        """As :meth:`Client.list_tasks`: ``async for task in client.list_tasks(): ...``."""
        seen: set[str] = set()
        offset = 0
        while limit is None or len(seen) < limit:
            page = await self._json("GET", f"{c.API}/tasks", params={"limit": min(page_size, 100), "offset": offset})
            tasks = page.get("tasks") or []
            for item in tasks:
                info = c.task_info(item, self.base_url)
                if info.task_id in seen:
                    continue
                seen.add(info.task_id)
                yield AsyncTask(self, info)
                if limit is not None and len(seen) >= limit:
                    return
            offset += len(tasks)
            if not tasks or offset >= int(page.get("total") or 0):
                return

    async def models(self) -> list[ModelInfo]:
        return c.model_infos(await self._json("GET", c.API + "/models"))

    async def fetch(self, url: str, target: Path) -> Path:
        """Download a result link (without the API key) to ``target``, atomically."""
        attempt = 0
        while True:
            try:
                async with self._http.stream("GET", url) as response:
                    if response.is_success:
                        return await _stream_to(target, response)
                    await response.aread()
                wait = self.retry.after_response(attempt, response)
                if wait is None:
                    raise e.error_for(response)
            except httpx.TransportError as exc:
                wait = self.retry.after_error(attempt, exc, True)
                if wait is None:
                    raise e.connection_error(exc, url) from exc
            attempt += 1
            await asyncio.sleep(wait)

    async def fetch_bytes(self, url: str) -> bytes:
        return (await self.request("GET", url, authorized=False)).content


def _json_body(fields: Mapping[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def body() -> dict[str, Any]:
        return {"json": fields}

    return body


def _write_bytes(target: Path, data: bytes) -> Path:
    from midiscribe.client._sync import _write_atomic

    return _write_atomic(target, [data])


async def _stream_to(target: Path, response: httpx.Response) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        handle = await asyncio.to_thread(tmp.open, "wb")
        try:
            async for chunk in response.aiter_bytes():
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class AsyncTask:
    """As :class:`~midiscribe.client.Task`, awaited."""

    def __init__(self, client: AsyncClient, info: TaskInfo | None, *, task_id: str | None = None) -> None:
        self.client = client
        self.info = info
        self.id: str = info.task_id if info is not None else str(task_id)

    def __repr__(self) -> str:
        state = f"{self.info.status} {self.info.progress}%" if self.info else "unknown"
        return f"AsyncTask({self.id!r}, {state})"

    @property
    def status(self) -> str | None:
        return self.info.status if self.info else None

    async def refresh(self) -> TaskInfo:
        self.info = await self.client.status(self.id)
        return self.info

    async def wait(
        self,
        timeout: float | None = None,
        *,
        progress: AsyncProgress | None = None,
        poll_interval_s: float = 0.25,
        max_poll_interval_s: float = 5.0,
    ) -> TaskInfo:
        """As :meth:`Task.wait`; ``progress`` may be a plain function or a coroutine function."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval, last = poll_interval_s, None
        while True:
            info = await self.refresh()
            seen = (info.status, info.progress)
            if progress is not None and seen != last:
                answer = progress(info)
                if inspect.isawaitable(answer):
                    await answer
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
            await asyncio.sleep(pause)

    async def download(
        self,
        directory: str | os.PathLike[str] = ".",
        *,
        name: str | None = None,
        include: tuple[FileKind, ...] | None = None,
        overwrite: bool = False,
    ) -> list[Path]:
        info = self.info if self.info is not None and self.info.finished else await self.refresh()
        plan = c.download_plan(info, directory, name=name, include=include, overwrite=overwrite)
        return list(await asyncio.gather(*(self.client.fetch(url, path) for url, path in plan)))

    async def notes(self) -> list[Note]:
        from midiscribe.formats.notes_csv import read_notes_csv

        info = self.info if self.info is not None and self.info.status == "completed" else await self.refresh()
        result = c.completed_result(info)
        if result.notes_url:
            text = (await self.client.fetch_bytes(result.notes_url)).decode("utf-8")
            return read_notes_csv(io.StringIO(text, newline=""))
        return list((await self.retune()).notes)

    async def retune(self, **options: Any) -> Transcription:
        return await self.client.retune(self.id, **options)

    async def retune_file(
        self, path: str | os.PathLike[str], *, format: Literal["midi", "csv"] = "midi", **options: Any
    ) -> Path:
        return await self.client.retune_file(self.id, path, format=format, **options)

    async def cancel(self) -> TaskInfo:
        self.info = await self.client.cancel(self.id)
        return self.info
