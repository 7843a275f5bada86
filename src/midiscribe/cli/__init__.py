"""The `midiscribe` command: one module per command group. The CLI modules are the only ones that print.

* ``transcribe``: files in, MIDI out (``cli/transcribe.py``)
* ``serve``, ``keys``, ``config``: the service on one machine (``cli/service.py``)
* ``worker``, ``db``: the distributed mode (``cli/distributed.py``)
* ``remote transcribe``: the same as ``transcribe``, on a server through the client (``cli/remote.py``)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from midiscribe import __version__
from midiscribe.cli import distributed, remote, service, transcribe

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="midiscribe",
        description="Turn recordings into MIDI with the basic-pitch model, without TensorFlow.",
    )
    parser.add_argument("--version", action="version", version=f"midiscribe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (transcribe, service, distributed, remote):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code
