"""`midiscribe serve`, `keys` and `config`: the service's commands. Prints, like every CLI module."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the HTTP API, the workers and the web page on one machine")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default 1)")
    serve.add_argument("--data-dir", type=Path, default=None, help="where tasks and files are kept")
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    keys.add_argument("--data-dir", type=Path, default=None)
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", default="", help="a label for the key")
    create.set_defaults(handler=_keys_create)
    sub.add_parser("list", help="list keys (never the keys themselves)").set_defaults(handler=_keys_list)
    revoke = sub.add_parser("revoke", help="revoke a key by id or shown prefix")
    revoke.add_argument("key", help="key id or prefix as shown by `keys list`")
    revoke.set_defaults(handler=_keys_revoke)

    config = commands.add_parser("config", help="print the effective settings, secrets masked")
    config.set_defaults(handler=_config)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {"host": "host", "port": "port", "workers": "workers", "data_dir": "data_dir"}
    return {field: getattr(args, attr) for attr, field in names.items() if getattr(args, attr, None) is not None}


def _settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from midiscribe.service.settings import Settings

    try:
        return Settings(**_overrides(args))
    except ValidationError as exc:
        raise SystemExit(f"invalid settings: {exc}") from None


def _engine(args: argparse.Namespace) -> Any:
    """The database, its schema migrated (embedded) or checked (distributed: `midiscribe db upgrade`)."""
    from midiscribe.service.records.migrate import SchemaError
    from midiscribe.service.wiring import build_engine

    try:
        return build_engine(_settings(args))
    except SchemaError as exc:
        raise SystemExit(str(exc)) from None


def _serve(args: argparse.Namespace) -> int:
    from midiscribe.cli.distributed import share_metrics

    share_metrics()  # before prometheus_client is imported: workers' samples show on /metrics
    import uvicorn

    from midiscribe.service.api.app import create_app
    from midiscribe.service.logs import configure
    from midiscribe.service.records.keys import count_keys
    from midiscribe.service.records.migrate import SchemaError
    from midiscribe.service.wiring import build_engine
    from midiscribe.service.work.dispatch import Background, build_dispatcher
    from midiscribe.service.work.pool import Supervisor

    settings = _settings(args)
    configure("api", settings.log_format)
    try:
        engine = build_engine(settings)  # embedded: migrates; distributed: checks the schema
    except SchemaError as exc:
        raise SystemExit(str(exc)) from None
    dispatcher = build_dispatcher(settings)
    # With a broker this node is API only: Celery workers run the tasks (`midiscribe worker`);
    # the node sends webhooks and sweeps for lost tasks. Without one it runs its own workers.
    background = Background(settings, engine, dispatcher) if settings.distributed else None
    supervisor = Supervisor(settings, _overrides(args)) if settings.workers > 0 and background is None else None

    def stop_workers() -> None:
        if background is not None:
            background.stop()
        if supervisor is not None:
            print("stopping workers (running tasks go back to the queue)...", flush=True)
            supervisor.stop()

    alive = (lambda: supervisor is None or bool(supervisor.pids())) if background is None else dispatcher.healthy
    app = create_app(settings, workers_alive=alive, on_shutdown=stop_workers, dispatcher=dispatcher, engine=engine)
    print(f"midiscribe listening on http://{settings.host}:{settings.port}  (data in {settings.data_dir.resolve()})")
    workers = "Celery (`midiscribe worker`)" if background is not None else str(settings.workers)
    print(f"  API docs: http://{settings.host}:{settings.port}/docs   workers: {workers}")
    if count_keys(engine) == 0:
        print("  no API key yet: create one with `midiscribe keys create --name NAME`")
    if supervisor is not None:
        supervisor.start()
    if background is not None:
        background.start()
    try:
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info", log_config=None)
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: a clean stop
        pass
    finally:
        stop_workers()  # no-op if the server's shutdown already did it
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from midiscribe.service.records.keys import create_key

    key, record = create_key(_engine(args), args.name)
    print(f"API key (shown once, keep it secret): {key}")
    print(f"webhook signing secret:              {record.webhook_secret}")
    print(f"key id: {record.id}")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from midiscribe.service.records.keys import list_keys

    rows = list_keys(_engine(args))
    if not rows:
        print("no keys; create one with `midiscribe keys create`")
    for record, created in rows:
        state = "revoked" if record.revoked else "active"
        print(f"{record.id}  {record.prefix}...  {state:7s}  {created:%Y-%m-%d %H:%M}  {record.name}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from midiscribe.service.records.keys import revoke

    n = revoke(_engine(args), args.key)
    print(f"revoked {n} key(s)" if n else f"no active key matches {args.key!r}")
    return 0 if n else 1


def _config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).masked(), indent=2, default=str))
    return 0
