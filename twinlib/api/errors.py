"""JSON errors for every failure the API can meet, so no client ever sees an HTML error page.

Every error body has the same shape::

    {"status": 400, "error": "Bad Request", "message": "...", "parameter": "limit"}

``parameter`` appears when one request parameter is to blame. A missing or unreadable database
is a 503 (the service is there, its data is not) whose ``reason`` says why: ``missing``,
``unreadable``, ``busy`` (another writer holds the database past the retries; with
``Retry-After``) or ``readonly`` (this server may not write the file). A bug is a 500 with the
same JSON shape and the traceback in the server log, never in the response.
"""
from __future__ import annotations

import sqlite3
from http import HTTPStatus

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from twinlib.api.stores import is_busy, is_readonly
from twinlib.store import StoreError, StoreMissingError

__all__ = ["ApiError", "error_response", "register_error_handlers", "RETRY_AFTER_READ_S",
           "RETRY_AFTER_WRITE_S"]

#: ``Retry-After`` of a busy answer: a read met a lock only SQLite's recovery or a checkpoint
#: holds (short); a write already waited through its retries (longer).
RETRY_AFTER_READ_S = 1
RETRY_AFTER_WRITE_S = 5


class ApiError(Exception):
    """An error the API reports to the client as JSON (status, message, optional parameter)."""

    def __init__(self, status: int, message: str, *, parameter: str | None = None,
                 headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.parameter = parameter
        self.headers = headers or {}
        self.extra = extra


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_response(status: int, message: str, *, parameter: str | None = None,
                   headers=None, **extra) -> Response:
    """A JSON error response in the API's one error shape."""
    body = {"status": status, "error": _phrase(status), "message": message}
    if parameter is not None:
        body["parameter"] = parameter
    body.update(extra)
    resp = Response(orjson.dumps(body), status=status, mimetype="application/json")
    if headers:
        for key, value in (headers.items() if isinstance(headers, dict) else headers):
            if key.lower() not in ("content-type", "content-length"):
                resp.headers[key] = value
    return resp


def register_error_handlers(app: Flask) -> None:
    """Turn every exception a request can raise into a JSON response."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, parameter=exc.parameter,
                              headers=exc.headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Keep werkzeug's headers: a 405 must still say which methods are allowed (Allow).
        headers = exc.get_response().headers
        return error_response(exc.code or 500, exc.description or _phrase(exc.code or 500),
                              headers=list(headers.items()))

    @app.errorhandler(StoreMissingError)
    def _store_missing(exc: StoreMissingError):
        app.logger.warning("database unavailable: %s", exc)
        return error_response(503, "database unavailable: the database does not exist or has no "
                                   "schema", reason="missing")

    def _busy_or_readonly(exc: BaseException):
        if is_busy(exc):
            write = request.method not in ("GET", "HEAD", "OPTIONS")
            wait = RETRY_AFTER_WRITE_S if write else RETRY_AFTER_READ_S
            app.logger.warning("database busy: %s", exc)
            what = ("another writer (a bulk import, the monitor) held the database through "
                    "every retry; nothing was written" if write else
                    "the database is locked for a moment (recovery or checkpoint)")
            return error_response(503, f"database busy: {what}; retry after {wait} s",
                                  reason="busy", headers={"Retry-After": str(wait)})
        if is_readonly(exc):
            app.logger.warning("database read-only: %s", exc)
            return error_response(503, "database is read-only for this server: writes are "
                                       "refused (details in the server log)", reason="readonly")
        return None

    @app.errorhandler(sqlite3.DatabaseError)
    def _db_unreadable(exc: Exception):
        # Covers "file is not a database", a read-only open of a file we cannot read, a disk
        # I/O error and the PostgreSQL driver's errors (a lost server, a timeout): the data is
        # unavailable, retry later. The log gets the detail.
        app.extensions["twinlib.stores"].discard()
        answer = _busy_or_readonly(exc)
        if answer is not None:
            return answer
        app.logger.warning("database unreadable: %s", exc)
        return error_response(503, f"database unreadable: {exc}", reason="unreadable")

    try:  # the PostgreSQL backend's driver errors: the same answer (a lost server, a timeout)
        import psycopg
        app.register_error_handler(psycopg.Error, _db_unreadable)
    except ImportError:  # pragma: no cover
        pass

    @app.errorhandler(StoreError)
    def _store_error(exc: StoreError):
        # The store's message names the file's path: it goes to the log, not to the client.
        app.extensions["twinlib.stores"].discard()
        answer = _busy_or_readonly(exc)
        if answer is not None:
            return answer
        app.logger.warning("database unusable: %s", exc)
        return error_response(503, "database unreadable (details in the server log)",
                              reason="unreadable")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error in %s", type(exc).__name__)
        return error_response(500, "internal error (logged on the server)")
