"""The Flask application factory.

``create_app(settings=None, test_config=None)`` builds the app from :class:`twinlib.config.Settings`
(``get_settings()`` when not given) and then applies ``test_config`` (a mapping of Flask config
keys, e.g. ``{"DB_PATH": ..., "API_TOKEN": ...}``). Config keys the app reads:

- ``DB_PATH`` — the SQLite database (opened read-only for reads, never created);
- ``API_TOKEN`` — bearer token for writes (``None``: writes refused);
- ``API_READ_TOKEN`` — token every read needs (``None``: reads are open; see
  :mod:`twinlib.api.auth` for the routes that stay open);
- ``CORS_ORIGINS`` — origins allowed from browsers (list or comma-separated string);
- ``MAX_CONTENT_LENGTH`` — request body limit (16 MiB);
- ``DATA_FAST_PATH`` — answer parameterless ``GET /data`` below Flask (default on; see
  :mod:`twinlib.api.fastpath`);
- ``WRITE_ATTEMPTS``, ``WRITE_RETRY_PAUSE_S`` — a write that finds the database busy is tried
  this often (3), pausing 0.1 s, 0.2 s, … (jittered) between attempts, then answered 503;
- ``AUTH_FAILURES_MAX``, ``AUTH_FAILURE_WINDOW_S`` — wrong bearer tokens a client may send per
  window before its writes are answered 429 (10 per 60 s; see :mod:`twinlib.api.auth`);
- ``COMPRESS_MIN_SIZE`` — answers at least this large (bytes) are gzip-compressed for clients
  that accept it (flask-compress; default 2048, so ``GET /data``'s ~1 KB is sent as is);
- ``METRICS`` — count and time every request for ``GET /metrics`` (default on).

Debug mode is never switched on here; ``twin api`` serves the app with gunicorn.
"""
from __future__ import annotations

from flask import Flask, request
from flask_compress import Compress

from twinlib.api.auth import FailureLimiter, install_read_auth
from twinlib.api.cors import install_cors, parse_origins
from twinlib.api.errors import register_error_handlers
from twinlib.api.fastpath import DataFastPath
from twinlib.api.limits import ChunkedBodyLimit
from twinlib.api.security import install_security_headers
from twinlib.api.stores import StoreProvider
from twinlib.api.views import BLUEPRINTS
from twinlib.config import Settings, get_settings
from twinlib.metrics import ENDPOINT_KEY, ApiMetricsMiddleware

__all__ = ["create_app"]

def create_app(settings: Settings | None = None, test_config: dict | None = None) -> Flask:
    """Build the twinlib REST API as a Flask app."""
    settings = settings if settings is not None else get_settings()
    app = Flask("twinlib.api")
    app.config.from_mapping(
        DB_PATH=str(settings.db_path),
        API_TOKEN=settings.api_token,
        API_READ_TOKEN=settings.api_read_token,
        CORS_ORIGINS=parse_origins(settings.api_cors_origins),
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        WRITE_ATTEMPTS=3,
        WRITE_RETRY_PAUSE_S=0.1,
        AUTH_FAILURES_MAX=10,
        AUTH_FAILURE_WINDOW_S=60.0,
        DEBUG=False,
        COMPRESS_ALGORITHM=["gzip"],
        COMPRESS_MIN_SIZE=2048,
        COMPRESS_LEVEL=6,
        COMPRESS_MIMETYPES=["application/json", "text/csv", "text/plain", "text/html",
                            "text/css", "text/javascript", "application/javascript"],
        COMPRESS_STREAMS=True,
        COMPRESS_ALGORITHM_STREAMING=["gzip"],  # the CSV export (flask-compress: none by default)
        METRICS=True,
    )
    if test_config:
        app.config.from_mapping(test_config)
    app.config["CORS_ORIGINS"] = parse_origins(app.config["CORS_ORIGINS"])
    app.extensions["twinlib.settings"] = settings
    app.extensions["twinlib.stores"] = StoreProvider(
        app.config["DB_PATH"], write_attempts=app.config["WRITE_ATTEMPTS"],
        retry_pause_s=app.config["WRITE_RETRY_PAUSE_S"])
    app.extensions["twinlib.auth_failures"] = FailureLimiter(
        app.config["AUTH_FAILURES_MAX"], app.config["AUTH_FAILURE_WINDOW_S"])
    register_error_handlers(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)

    @app.before_request
    def _name_endpoint():  # the route's pattern, for the metrics (bounded label values)
        if request.url_rule is not None:
            request.environ[ENDPOINT_KEY] = request.url_rule.rule

    install_read_auth(app)
    install_cors(app, app.config["CORS_ORIGINS"])
    install_security_headers(app)
    Compress(app)
    if app.config.get("DATA_FAST_PATH", True):
        app.wsgi_app = DataFastPath(app.wsgi_app, app.extensions["twinlib.stores"],
                                    kinds=settings.kinds,
                                    vary_origin=_varies_by_origin(app.config["CORS_ORIGINS"]),
                                    read_tokens=(app.config.get("API_READ_TOKEN"),
                                                 app.config.get("API_TOKEN")))
    if app.config.get("MAX_CONTENT_LENGTH"):
        app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])
    if app.config.get("METRICS", True):
        app.wsgi_app = ApiMetricsMiddleware(app.wsgi_app)
    return app


def _varies_by_origin(origins: tuple[str, ...]) -> bool:
    # With a list of allowed origins the answer depends on the request's Origin; with "*" or
    # no CORS at all it does not.
    return bool(origins) and "*" not in origins
