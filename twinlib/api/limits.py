"""The body limit for chunked requests, which carry no ``Content-Length`` to check up front.

Werkzeug limits such a stream to ``MAX_CONTENT_LENGTH`` by reading *up to* the limit and
stopping, so a 17 MiB chunked body was cut at 16 MiB and the cut text parsed as if it were the
request. This middleware reads a chunked body itself (at most the limit plus one byte): more than
the limit is a JSON 413 before any view runs; otherwise the view gets the body with its true
``Content-Length``.
"""
from __future__ import annotations

import io

from twinlib.api.errors import error_response
from twinlib.api.security import SECURITY_HEADERS

__all__ = ["ChunkedBodyLimit"]


class ChunkedBodyLimit:
    """WSGI middleware: refuse (413) a length-less request body over ``limit`` bytes."""

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app = wsgi_app
        self.limit = int(limit)

    def __call__(self, environ, start_response):
        if ("chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
                or environ.get("CONTENT_LENGTH") or not environ.get("wsgi.input_terminated")):
            # With a Content-Length werkzeug compares it with the limit itself; a server that
            # does not terminate the input gives the app no body without a length at all.
            return self.wsgi_app(environ, start_response)
        stream = environ["wsgi.input"]
        chunks, size = [], 0
        while size <= self.limit:
            chunk = stream.read(min(1 << 20, self.limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > self.limit:
            resp = error_response(413, f"the request body is larger than {self.limit} bytes",
                                  parameter="body", headers=list(SECURITY_HEADERS))
            return resp(environ, start_response)
        body = b"".join(chunks)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.wsgi_app(environ, start_response)
