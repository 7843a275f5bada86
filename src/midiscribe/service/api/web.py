"""The Endpoint Explorer: static files at `/`, and its configuration.

In the development setting (``MIDISCRIBE_DEV_MODE=true``) the page needs no key: the server
keeps a local key in its data dir and hands it to pages loaded from this machine only: the
connection must come from a loopback address *and* name a loopback host (``Host:
127.0.0.1:8000``, ``localhost``, ``[::1]``), so a page on another site whose name was re-bound
to 127.0.0.1 (DNS rebinding) is never handed the key.
"""

from __future__ import annotations

import ipaddress
import os
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
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
    async def config(request: Request) -> JSONResponse:
        state = app_state(request)
        out: dict[str, Any] = {"dev_mode": state.settings.dev_mode, "local_key": None}
        if state.settings.dev_mode and _is_loopback(request) and _names_loopback(request):
            out["local_key"] = await run_in_threadpool(_dev_key, state)
        return JSONResponse(out, headers={"cache-control": "no-store"})


def _is_loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def _names_loopback(request: Request) -> bool:
    """Whether the Host header names this machine by a loopback name or address (any port)."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):  # [::1]:8000
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if not name:
        return False
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
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
