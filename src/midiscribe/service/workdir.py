"""Working files under the data dir (or ``MIDISCRIBE_WORK_DIR``), never in the system temp dir.

Every process that needs scratch space (the API spooling an upload, a worker holding a task's
input and outputs, ``serve``'s shared metrics) gets its own folder, ``<work>/<host>-<pid>``.
Folders are removed when their work ends; a process killed with SIGKILL leaves its folder behind,
and :func:`sweep` removes the folders of processes of this host that are no longer alive (run at
every start). Other hosts' folders (a shared ``DATA_DIR``) are left to their own sweeps.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

log = logging.getLogger("midiscribe.workdir")


def _host() -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:60] or "host"


def process_dir(root: Path) -> Path:
    """This process's folder under ``root``, created on first use."""
    path = root / f"{_host()}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def scratch(root: Path, prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A fresh folder in this process's folder, removed when the ``with`` block ends."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=process_dir(root))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep(root: Path) -> int:
    """Remove the folders of this host's dead processes; the number removed."""
    if not root.is_dir():
        return 0
    prefix = _host() + "-"
    removed = 0
    for entry in root.iterdir():
        pid = entry.name.removeprefix(prefix)
        if not entry.name.startswith(prefix) or not pid.isdigit():
            continue
        if int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d working folder(s) left by stopped processes in %s", removed, root)
    return removed
