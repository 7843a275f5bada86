"""The Endpoint Explorer: static files at `/`, and its configuration.

In the development setting (``MIDISCRIBE_DEV_MODE=true``) the page needs no key: the server
keeps a local key in its data dir and hands it to pages loaded from this machine only.
"""

from __future__ import annotations

import ipaddress
import os
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.state import AppState, app_state
from midiscribe.service.records.keys import create_key, lookup

WEB_DIR = Path(str(resources.files("midiscribe") / "web"))


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"cache-control": "no-cache"})

    @app.get("/web/config", include_in_schema=False)
    async def config(request: Request) -> dict[str, Any]:
        state = app_state(request)
        out: dict[str, Any] = {"dev_mode": state.settings.dev_mode, "local_key": None}
        if state.settings.dev_mode and _is_loopback(request):
            out["local_key"] = await run_in_threadpool(_dev_key, state)
        return out


def _is_loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def _dev_key(state: AppState) -> str:
    """The development setting's local key, created once and kept (0600) in the data dir."""
    path = state.settings.data_dir / "dev-key"
    if path.exists():
        key = path.read_text().strip()
        if lookup(state.engine, key) is not None:
            return key
    key, _ = create_key(state.engine, "local (development setting)")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
