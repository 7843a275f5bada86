"""`midiscribe worker` and `midiscribe db`: the commands of the distributed mode. Prints, like every CLI module."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics(work_dir: Path | None = None) -> None:
    """Let this process and the worker processes it starts report metrics together (prometheus_client's
    multiprocess mode). Must run before anything imports prometheus_client; a set directory is kept.

    The samples go to ``metrics-*`` in this process's working folder under ``work_dir`` (never the
    system temp dir: a SIGKILL or a re-raised SIGTERM skips the cleanup, and the next start's sweep
    of dead processes' folders removes it then)."""
    if os.environ.get(METRICS_ENV):
        return
    if work_dir is not None:
        from midiscribe.service.workdir import process_dir

        path = tempfile.mkdtemp(prefix="metrics-", dir=process_dir(work_dir))
    else:
        path = tempfile.mkdtemp(prefix="midiscribe-metrics-")
    os.environ[METRICS_ENV] = path
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked worker process that exits
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)


def add_commands(commands: Any) -> None:
    worker = commands.add_parser("worker", help="run a Celery worker (distributed mode: MIDISCRIBE_BROKER_URL set)")
    worker.add_argument("--concurrency", type=int, default=1, metavar="N", help="worker processes (default 1)")
    worker.add_argument(
        "--queues", default="default,long", help="queues to take tasks from: default, long or both (default both)"
    )
    worker.add_argument("--threads", type=int, default=None, help="inference threads per process (default cores/N)")
    worker.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (default 9108; 0: off)")
    worker.add_argument("--data-dir", type=Path, default=None, help="scratch and local-store directory")
    worker.add_argument(
        "--no-supervise",
        action="store_true",
        help="run the Celery worker in this process; a deaf worker then exits 75 for systemd or Kubernetes to restart",
    )
    worker.set_defaults(handler=_worker)

    db = commands.add_parser("db", help="database schema migrations (Alembic)")
    db.add_argument("--data-dir", type=Path, default=None)
    sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sub.add_parser("upgrade", help="apply pending migrations (safe to repeat)").set_defaults(handler=_db_upgrade)
    sub.add_parser("current", help="print the database's and the code's revisions").set_defaults(handler=_db_current)


def _settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from midiscribe.service.settings import Settings

    overrides = {"data_dir": args.data_dir} if getattr(args, "data_dir", None) is not None else {}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"invalid settings: {exc}") from None


def _worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from midiscribe.service.workdir import sweep

    sweep(settings.work_path)
    share_metrics(settings.work_path)
    if not settings.distributed:
        raise SystemExit(
            "midiscribe worker needs a broker: set MIDISCRIBE_BROKER_URL (redis://..., amqp://...); "
            "without one, `midiscribe serve` runs its own workers"
        )
    kinds = [q.strip() for q in args.queues.split(",") if q.strip()]
    if not kinds or any(k not in ("default", "long") for k in kinds):
        raise SystemExit("--queues takes default, long or default,long")
    if args.concurrency < 1:
        raise SystemExit("--concurrency must be at least 1")

    from midiscribe.core.model import default_threads
    from midiscribe.service import metrics
    from midiscribe.service.logs import configure
    from midiscribe.service.records.migrate import SchemaError
    from midiscribe.service.wiring import build_engine
    from midiscribe.service.work.celery_app import worker_app

    configure("worker", settings.log_format)
    # We set worker_cancel_long_running_tasks_on_connection_loss=False on purpose (the task record
    # decides who runs what, not the broker link); Celery warns about it on every reconnect anyway.
    warnings.filterwarnings("ignore", message=r"\s*In Celery 5.1 we introduced an optional breaking change")
    try:
        build_engine(settings).dispose()  # the schema must be this code's; don't fork an open pool
    except SchemaError as exc:
        raise SystemExit(str(exc)) from None
    if not args.no_supervise:
        return _supervise()
    threads = args.threads or max(1, default_threads() // args.concurrency)
    port = settings.worker_metrics_port if args.metrics_port is None else args.metrics_port
    if port:
        metrics.serve(settings.worker_metrics_host, port)
    queues = ",".join(f"{settings.queue_prefix}.{kind}" for kind in kinds)
    print(f"midiscribe worker: {args.concurrency} process(es) x {threads} thread(s) on {queues}", flush=True)
    name = f"midiscribe-{os.getpid()}@{socket.gethostname()}"
    app = worker_app(settings, threads, name=name, queues=queues.split(","))
    argv = ["worker", f"--concurrency={args.concurrency}", "--pool=prefork", f"--queues={queues}", "--loglevel=INFO"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", f"--hostname={name}"]
    from midiscribe.service.work.watchdog import EXIT_DEAF, current

    code = 0
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    dog = current()
    return EXIT_DEAF if dog is not None and dog.deaf else code


def _supervise() -> int:
    """Run the worker as a child process and start it again when its watchdog found it deaf (exit 75);
    any other exit ends this one with the same status. SIGTERM and SIGINT are passed on (warm stop)."""
    import signal
    import subprocess
    import sys
    import time

    from midiscribe.service.work.watchdog import EXIT_DEAF

    argv = [sys.executable, "-c", "import sys; from midiscribe.cli import main; sys.exit(main())"]
    argv += [*sys.argv[1:], "--no-supervise"]
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    restarts = 0
    while True:
        child = subprocess.Popen(argv)
        code = child.wait()
        if stopping or code != EXIT_DEAF:
            return code if code >= 0 else 128 - code
        restarts += 1
        print(f"midiscribe worker: the worker stopped taking tasks (deaf); starting it again ({restarts})", flush=True)
        time.sleep(1.0)


def _db_upgrade(args: argparse.Namespace) -> int:
    from midiscribe.service.records.migrate import upgrade
    from midiscribe.service.wiring import build_engine

    revision = upgrade(build_engine(_settings(args), create=False))
    print(f"database schema at revision {revision}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from midiscribe.service.records.migrate import current, head
    from midiscribe.service.wiring import build_engine

    found = current(build_engine(_settings(args), create=False))
    print(f"database: {found or 'empty'}   code: {head()}")
    return 0 if found == head() else 1
