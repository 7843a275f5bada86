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
    create.add_argument(
        "--max-audio-seconds-per-day", type=float, default=None, metavar="S", help="this key's daily audio quota"
    )
    create.set_defaults(handler=_keys_create)
    sub.add_parser("list", help="list keys with their usage (never the keys themselves)").set_defaults(
        handler=_keys_list
    )
    quota = sub.add_parser("quota", help="set a key's daily audio quota in seconds (`none`: the server's default)")
    quota.add_argument("key", help="key id or prefix as shown by `keys list`")
    quota.add_argument("seconds", help="audio seconds per UTC day, or none")
    quota.set_defaults(handler=_keys_quota)
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
    from midiscribe.service.workdir import sweep

    settings = _settings(args)
    sweep(settings.work_path)  # working files of processes that were killed
    share_metrics(settings.work_path)  # before prometheus_client is imported: workers' samples show on /metrics
    import uvicorn

    from midiscribe.service.api.app import create_app
    from midiscribe.service.api.protocol import EnvelopeH11Protocol
    from midiscribe.service.logs import configure
    from midiscribe.service.records.keys import count_keys
    from midiscribe.service.records.migrate import SchemaError
    from midiscribe.service.wiring import build_engine
    from midiscribe.service.work.dispatch import Background, build_dispatcher
    from midiscribe.service.work.pool import Supervisor

    configure("api", settings.log_format)
    try:  # embedded: migrates; distributed: checks the schema. A short busy timeout: 503, not a hang
        engine = build_engine(settings, busy_timeout_s=settings.database_busy_timeout_s)
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
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            log_config=None,
            http=EnvelopeH11Protocol,  # malformed requests get the error envelope too
        )
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: a clean stop
        pass
    finally:
        stop_workers()  # no-op if the server's shutdown already did it
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from midiscribe.service.records.keys import create_key

    key, record = create_key(_engine(args), args.name, max_audio_seconds_per_day=args.max_audio_seconds_per_day)
    print(f"API key (shown once, keep it secret): {key}")
    print(f"webhook signing secret:              {record.webhook_secret}")
    print(f"key id: {record.id}")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from midiscribe.service.records.keys import list_keys
    from midiscribe.service.records.usage import totals

    engine = _engine(args)
    rows = list_keys(engine)
    if not rows:
        print("no keys; create one with `midiscribe keys create`")
        return 0
    used = {key_id: (today, total, n) for key_id, _, today, total, n in totals(engine)}
    default = _settings(args).max_audio_seconds_per_day
    print(
        f"{'id':32s}  {'prefix':13s}  {'state':7s}  {'created':16s}  {'today s':>9s}  {'quota s':>9s}  "
        f"{'total s':>10s}  {'tasks':>6s}  name"
    )
    for record, created in rows:
        state = "revoked" if record.revoked else "active"
        today, total, n = used.get(record.id, (0.0, 0.0, 0))
        quota = record.max_audio_seconds_per_day or default
        print(
            f"{record.id}  {record.prefix}...  {state:7s}  {created:%Y-%m-%d %H:%M}  {today:9.1f}  "
            f"{(f'{quota:.0f}' if quota else '-'):>9s}  {total:10.1f}  {n:6d}  {record.name}"
        )
    return 0


def _keys_quota(args: argparse.Namespace) -> int:
    from midiscribe.service.records.keys import set_quota

    try:
        seconds = None if args.seconds.lower() in ("none", "default", "") else float(args.seconds)
    except ValueError:
        raise SystemExit("seconds must be a number of audio seconds per day, or none") from None
    if seconds is not None and seconds <= 0:
        raise SystemExit("seconds must be positive (or none for the server's default)")
    n = set_quota(_engine(args), args.key, seconds)
    print(
        f"quota of {n} key(s) set to {'the default' if seconds is None else f'{seconds:g} s/day'}"
        if n
        else f"no key matches {args.key!r}"
    )
    return 0 if n else 1


def _keys_revoke(args: argparse.Namespace) -> int:
    from midiscribe.service.records.keys import revoke

    n = revoke(_engine(args), args.key)
    print(f"revoked {n} key(s)" if n else f"no active key matches {args.key!r}")
    return 0 if n else 1


def _config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).masked(), indent=2, default=str))
    return 0
