"""A strict, fast reader of the plainest HTTP/1 requests, for :mod:`twinlib.api.worker`.

gunicorn's request parser is general (any method, bodies, chunking, PROXY protocol, forwarded
headers, folding, ...) and costs ~25 % of the CPU of answering ``GET /data`` (measured: see
``benchmarks/bench_api.py``). Nearly every request a twin API gets is the plainest kind: a
``GET`` or ``HEAD`` of an origin-form path, a few ordinary headers, no body. :func:`parse_simple`
reads exactly those, into an object with the attributes gunicorn's ``Request`` offers to the rest
of the serving code (``gunicorn.http.wsgi.create`` builds the WSGI environ from it as from its
own), and answers ``None`` for anything else, which then goes to gunicorn's parser unchanged: so
every refusal (400, 414, 431, 501, ...) and every special case stays gunicorn's decision.

"Plainest" here means all of:

- the request line is ``GET`` or ``HEAD``, one space, a target of printable ASCII starting with
  ``/`` (no fragment), one space, ``HTTP/1.0`` or ``HTTP/1.1``;
- every header line is ``name: value`` with a token name without ``_`` (gunicorn drops those, or
  lets configured forwarders set them), no space before the colon, a value of printable ASCII,
  spaces and tabs (no obsolete folding, no 8-bit bytes); no name appears twice;
- no ``Content-Length``, ``Transfer-Encoding`` or ``Expect`` (no body to frame, nothing to
  continue), and none of the configured secure-scheme headers (``X-Forwarded-Proto`` ...,
  whose trust gunicorn decides);
- within the configured limits of the request line, header count and header line size.
"""
from __future__ import annotations

import io
import re

__all__ = ["SimpleRequest", "SimpleParser"]

_REQUEST_LINE = re.compile(rb"(GET|HEAD) (/[\x21-\x22\x24-\x7e]*) HTTP/1\.([01])")
_HEADER = re.compile(rb"([!#$%&'*+\-.^`|~0-9A-Za-z]+):[ \t]*([\x20-\x7e\t]*?)[ \t]*")
#: Names that mean a body, an expectation, or framing: gunicorn's parser handles those.
_NOT_SIMPLE = frozenset(("CONTENT-LENGTH", "TRANSFER-ENCODING", "EXPECT"))


class SimpleRequest:
    """What gunicorn's serving code reads of a ``gunicorn.http.message.Request``."""

    __slots__ = ("method", "uri", "path", "query", "version", "headers", "body")

    scheme = "http"
    fragment = ""
    proxy_protocol_info = None
    _expected_100_continue = False
    must_close = False
    trailers = ()

    def __init__(self, method: str, uri: str, version: tuple[int, int], headers: list):
        self.method = method
        self.uri = uri
        path, _, query = uri.partition("?")
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.body = io.BytesIO(b"")  # no body: reads give b""

    def should_close(self) -> bool:
        """gunicorn's rule: the first ``Connection`` header decides, else HTTP/1.0 closes."""
        for name, value in self.headers:
            if name == "CONNECTION":
                value = value.lower().strip(" \t")
                if value == "close":
                    return True
                if value == "keep-alive":
                    return False
                break
        return self.version <= (1, 0)

    def force_close(self) -> None:  # pragma: no cover - gunicorn's API; responses close instead
        pass


class SimpleParser:
    """:meth:`parse` reads a plain request head, or says None (see the module doc)."""

    def __init__(self, cfg):
        self.line_limit = cfg.limit_request_line if cfg.limit_request_line > 0 else 8190
        self.field_size = (cfg.limit_request_field_size if cfg.limit_request_field_size > 0
                           else 8190)
        self.max_fields = (cfg.limit_request_fields if cfg.limit_request_fields > 0
                           else 32768)
        self._memo: dict[bytes, tuple] = {}
        self.refused = _NOT_SIMPLE | frozenset(
            str(k).upper() for k in (cfg.secure_scheme_headers or {}))

    #: Heads remembered: a client polling sends the very same bytes again and again.
    MEMO_SIZE = 256

    def parse(self, data: bytes) -> SimpleRequest | None:
        """``data``: exactly one request head including its blank line, and nothing more."""
        known = self._memo.get(data)
        if known is None:
            known = self._parse(data)
            if known is None:
                return None
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            self._memo[data] = known
        method, uri, version, headers = known
        return SimpleRequest(method, uri, version, list(headers))

    def _parse(self, data: bytes) -> tuple | None:
        lines = data.split(b"\r\n")
        # the head ends with CRLF CRLF: two empty strings after the last header line
        if len(lines) < 3 or lines[-1] or lines[-2]:
            return None
        first = lines[0]
        if len(first) > self.line_limit:
            return None
        m = _REQUEST_LINE.fullmatch(first)
        if m is None:
            return None
        fields = lines[1:-2]
        if len(fields) > self.max_fields:
            return None
        headers = []
        seen = set()
        refused = self.refused
        limit = self.field_size - 2
        match = _HEADER.fullmatch
        for line in fields:
            h = match(line)
            if h is None or len(line) > limit:
                return None
            name = h.group(1).decode("ascii").upper()
            if name in seen or name in refused:
                return None
            seen.add(name)
            headers.append((name, h.group(2).decode("ascii")))
        return (m.group(1).decode("ascii"), m.group(2).decode("ascii"), (1, int(m.group(3))),
                tuple(headers))
