"""What a client may read of an error message: no server paths (issue 11, defect 10).

Core errors name the file they were given (useful on the command line); in the service that
file is a working file, so every message a client sees (status, webhook, error body) passes
through :func:`public_message`, which keeps only the file's own name.
"""

from __future__ import annotations

import re

# An absolute POSIX path (two components at least), or a Windows one, up to a quote, space or colon.
_PATH = re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[\"'(]))(?:/[^\s\"':/]+){2,}/?|[A-Za-z]:\\[^\s\"':]+")


def public_message(message: str) -> str:
    """``message`` with every absolute path replaced by its last component."""

    def name(match: re.Match[str]) -> str:
        parts = re.split(r"[/\\]", match.group(0).rstrip("/\\"))
        return parts[-1] or "the file"

    return _PATH.sub(name, message)
