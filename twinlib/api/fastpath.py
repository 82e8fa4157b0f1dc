"""A WSGI shortcut for the original request, ``GET /data`` without parameters.

That one request is what dashboards and scripts poll thousands of times a second. Answering it
costs ~130 µs of CPU in twinlib's code, but Flask's request machinery (context, routing,
response object) adds ~145 µs more; measured per request under gunicorn here. This middleware
answers exactly that request itself — same store call, same bytes and headers as the ``data``
blueprint — and hands everything else to Flask untouched: any parameter, any other method or
path, a browser ``Origin`` (so CORS stays Flask's job), and every failure (so a missing or broken
database gets the one JSON error path). With a read token configured it answers only a request
that carries exactly ``Authorization: Bearer <read or write token>`` (compared in constant
time); anything else goes to Flask, which decides (401, or basic auth).

Not compressed here: the ~1 KB answer costs more to gzip than to send (docs/DESIGN.md).

The answer is polled far more often than anything is written, so its bytes are kept with the
store's change stamp (:meth:`~twinlib.store.sqlite.SQLiteStore.change_stamp`, taken *before*
reading): while the stamp compares equal and the request comes through the same store (the
provider opens a new one when the file is replaced), the kept bytes are the answer, and a
request costs one ``PRAGMA data_version`` (SQLite) or one ``SELECT twin_stamp()`` round trip
(PostgreSQL) instead of decoding and serialising ten readings. A store whose stamp is ``None``
(cannot tell) is read every time.
"""
from __future__ import annotations

import hmac

import orjson

from twinlib.api.jsonio import readings_to_list
from twinlib.api.security import SECURITY_HEADERS
from twinlib.api.stores import StoreProvider

__all__ = ["DataFastPath"]

_HEADERS_JSON = "application/json"


def _no_stamp():
    return None


class DataFastPath:
    """WSGI middleware serving parameterless ``GET /data`` without entering Flask.

    ``vary_origin``: add ``Vary: Origin`` like the CORS hook does when a list of origins is
    configured (the answer to the same URL then depends on the Origin header).
    """

    def __init__(self, wsgi_app, provider: StoreProvider, limit: int = 10, *,
                 vary_origin: bool = False, kinds=None, read_tokens=(None, None)):
        self.wsgi_app = wsgi_app
        self.kinds = kinds
        self.provider = provider
        self.limit = limit
        # Flask's order: the view's Content-Type and Content-Length, then the after-request
        # hooks' headers (CORS, then security).
        # flask-compress says Vary: Accept-Encoding on every JSON answer, compressed or not.
        self._extra = ([("Vary", "Accept-Encoding, Origin")] if vary_origin else
                       [("Vary", "Accept-Encoding")]) + list(SECURITY_HEADERS)
        self._kept = None  # (store, change stamp, body): the last answer and what it was read at
        read, write = read_tokens
        # None: reads are open. Otherwise the exact header values that may read.
        self._auth = None if not read else tuple(
            f"Bearer {t}".encode() for t in (read, write) if t)

    def _authorized(self, environ) -> bool:
        if self._auth is None:
            return True
        given = environ.get("HTTP_AUTHORIZATION", "").strip().encode("latin-1", "replace")
        ok = False
        for expected in self._auth:  # no early exit: the time does not tell which one failed
            ok |= hmac.compare_digest(given, expected)
        return ok

    def _body(self) -> bytes:
        store = self.provider.reader()
        stamp = getattr(store, "change_stamp", _no_stamp)()
        kept = self._kept
        if stamp is not None and kept is not None and kept[0] is store and kept[1] == stamp:
            return kept[2]
        body = orjson.dumps(readings_to_list(store.latest(self.limit), self.kinds))
        # Stamp taken before the read: a commit in between only makes the next request re-read.
        self._kept = None if stamp is None else (store, stamp, body)
        return body

    def __call__(self, environ, start_response):
        if (environ.get("PATH_INFO") == "/data" and environ.get("REQUEST_METHOD") == "GET"
                and not environ.get("QUERY_STRING") and "HTTP_ORIGIN" not in environ
                and self._authorized(environ)):
            environ["twinlib.endpoint"] = "/data"
            try:
                body = self._body()
            except Exception:  # let Flask meet the same failure and answer it as JSON
                return self.wsgi_app(environ, start_response)
            start_response("200 OK", [("Content-Type", _HEADERS_JSON),
                                      ("Content-Length", str(len(body))), *self._extra])
            return [body]
        return self.wsgi_app(environ, start_response)
