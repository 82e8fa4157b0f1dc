"""``twin api``: serve the REST API with gunicorn on 127.0.0.1:5000 by default.

The workers are :class:`twinlib.api.worker.BufferedSyncWorker`: gunicorn's sync request
handling (measured best here for ``GET /data``: each request is a ~20 µs SQLite query; threads
or async buy nothing on 2 cores) behind a non-blocking reader that hands a request to the app
only once it has arrived whole, so slow clients (slowloris) cannot hold a worker; answered
connections are kept alive (``keepalive`` 5 s) in that same reader. gunicorn's
stock ``sync`` (two slow connections stop two workers) and ``gthread`` (``threads`` slow
connections per worker stop it) can still be chosen with ``--worker-class`` for comparison;
``benchmarks/bench_api.py`` measures all three under slow clients. Debug mode is never on: the
original's debugger console on 0.0.0.0 was a remote shell.

Binding beyond loopback (``--host 0.0.0.0``, a LAN address) needs a read token
(``TWIN_API_READ_TOKEN`` or ``[api] read_token``): without one the command refuses to start,
so plant data is never served to the whole network by accident. Metrics: the workers share a
fresh ``PROMETHEUS_MULTIPROC_DIR`` (made here unless one is given) so any worker's
``/metrics`` answer sums them all. ``--log-format json`` writes gunicorn's and twinlib's log
lines as JSON objects.
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile

from twinlib.commands._common import CommandError, add_db_option
from twinlib.config import get_settings

__all__ = ["register", "serve", "gunicorn_options", "WORKER_CLASSES"]

#: ``--worker-class`` choices: twinlib's slow-client-safe worker (default) and gunicorn's own.
WORKER_CLASSES = {
    "buffered": "twinlib.api.worker.BufferedSyncWorker",
    "sync": "sync",
    "gthread": "gthread",
}


def _child_exit(server, worker):
    # A dead worker's live gauges must not be summed any more (counters keep counting).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)


def _logconfig(log_format: str) -> dict | None:
    if log_format != "json":
        return None
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "twinlib.logfmt.json_formatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
    }


def gunicorn_options(host: str, port: int, workers: int, worker_class: str = "buffered",
                     log_format: str = "text") -> dict:
    """gunicorn settings for the API."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    extra = {"threads": 4} if worker_class == "gthread" else {}
    return {
        "bind": [bind],
        "workers": workers,
        "worker_class": WORKER_CLASSES[worker_class],
        **extra,
        # Import twinlib (pandas, and scikit-learn through the detection wing) once in the master;
        # workers fork with it loaded. The app opens no database until a request comes.
        "preload_app": True,
        "timeout": 60,
        "graceful_timeout": 10,
        # An answered connection stays open this long for the client's next request (the
        # buffered worker waits for it in its selector loop, not in a blocked read).
        "keepalive": 5,
        "accesslog": None,  # access logging costs ~10% of throughput; errors still go to stderr
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "twin-api",
        # The workers' heartbeat file is touched on every loop: keep it in memory, not on disk.
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        # No gunicornc control socket: it is one fixed path per user, shared by every instance.
        "control_socket_disable": True,
        "child_exit": _child_exit,
        **({"logconfig_dict": _logconfig(log_format)} if log_format == "json" else {}),
    }


def serve(settings, host: str, port: int, workers: int = 2, worker_class: str = "buffered") -> None:
    """Run gunicorn in this process until it is stopped (SIGINT/SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    from twinlib.metrics import prepare_multiprocess

    # Before the app (and so any metric) exists: the workers write their values there.
    own_dir = None
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        metrics_dir = own_dir = tempfile.mkdtemp(prefix="twin-api-metrics-")
    prepare_multiprocess(metrics_dir)

    from twinlib.api import create_app

    class _Server(BaseApplication):
        def load_config(self):
            for key, value in gunicorn_options(host, port, workers, worker_class,
                                               settings.log_format).items():
                self.cfg.set(key, value)

        def load(self):
            # Its stores open lazily, per worker process and thread: no connection crosses a fork.
            app = create_app(settings)
            # Everything imported so far (pandas, scikit-learn, ...) lives as long as the process:
            # freeze it out of the garbage collector, as Python advises for pre-fork servers.
            # Otherwise an occasional full collection walks millions of objects mid-request
            # (tens of ms: the p99 of GET /data), and walking them dirties copy-on-write pages.
            gc.collect()
            gc.freeze()
            return app

    try:
        _Server().run()
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise CommandError("--workers must be at least 1", code=2)
    settings = get_settings(db_path=args.db, api_host=args.host, api_port=args.port,
                            log_format=args.log_format)
    from twinlib.api.auth import is_loopback
    exposed = settings.exposed_host(settings.api_host)
    if not is_loopback(exposed) and not settings.api_read_token and args.open_reads:
        print(f"twin api: WARNING: serving on {exposed} without a read token "
              "(--open-reads): every client that can reach this address reads the plant's "
              "data; publish the port on loopback only or behind an authenticating proxy",
              file=sys.stderr)
    elif not is_loopback(exposed) and not settings.api_read_token:
        raise CommandError(
            f"refusing to serve on {exposed}: beyond loopback the API needs a read "
            "token. Set TWIN_API_READ_TOKEN (or [api] read_token in twin.toml) to a long random "
            "secret (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`); "
            "clients then send `Authorization: Bearer <token>`. Or bind to 127.0.0.1 and "
            "publish through a reverse proxy that authenticates (in a container whose port is "
            "published on the host's loopback, set TWIN_PUBLISHED_HOST=127.0.0.1 as the compose "
            "file does).", code=2)
    if not settings.db_path.exists():
        print(f"twin api: warning: database {settings.db_path} does not exist; requests get 503 "
              "until it does (create it with `twin init-db`)", file=sys.stderr)
    if settings.api_token is None:
        print("twin api: no API token configured (TWIN_API_TOKEN or [api] token): writes are "
              "refused", file=sys.stderr)
    if settings.api_read_token is None:
        print("twin api: no read token (TWIN_API_READ_TOKEN or [api] read_token): reads are "
              "open to every client that can reach this loopback address", file=sys.stderr)
    print(f"twin api: serving {settings.db_path} on http://{settings.api_host}:{settings.api_port} "
          f"({args.workers} gunicorn {args.worker_class} workers)", file=sys.stderr)
    serve(settings, settings.api_host, settings.api_port, args.workers, args.worker_class)
    return 0


def register(subparsers) -> None:
    """Add ``twin api`` to the CLI."""
    p = subparsers.add_parser(
        "api", help="serve the REST API (gunicorn)",
        description="Serve the twinlib REST API with gunicorn (workers that read each request "
                    "whole before handling it, so slow clients cannot block them). GET /data, /assets, "
                    "/alarms, /health, /metrics, ... ; the OpenAPI description is at /openapi.json, "
                    "Swagger UI at /docs. Binding beyond loopback needs a read token "
                    "(TWIN_API_READ_TOKEN).")
    p.add_argument("--host", default=None,
                   help="address to bind (default: TWIN_API_HOST or 127.0.0.1); beyond loopback "
                        "a read token is required (TWIN_API_READ_TOKEN)")
    p.add_argument("--port", type=int, default=None,
                   help="port (default: TWIN_API_PORT or 5000)")
    p.add_argument("--workers", type=int, default=2,
                   help="gunicorn worker processes (default: 2, one per core here)")
    p.add_argument("--worker-class", choices=sorted(WORKER_CLASSES), default="buffered",
                   help="buffered (default): gunicorn's sync handling behind a non-blocking "
                        "reader of whole requests, safe from slow clients; sync or gthread: "
                        "gunicorn's own, which slow clients can block (for comparison)")
    p.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="text (default) or json: one JSON object per log line (default: "
                        "TWIN_LOG_FORMAT or [logging] format)")
    p.add_argument("--open-reads", action="store_true",
                   help="serve reads without a read token even beyond loopback: only for a "
                        "container whose port is published on the host's loopback, or behind "
                        "a proxy that authenticates (a warning is printed)")
    add_db_option(p)
    p.set_defaults(func=_run)
