"""A gunicorn worker that slow clients cannot block: it reads each request whole before handling it.

gunicorn's sync worker reads a request with blocking calls, so one client that sends its headers
a byte at a time holds a worker for as long as it likes: two such connections stopped both of
``twin api``'s workers (slowloris). gunicorn's gthread worker only moves the problem: it waits
for the *first* byte in its poller, then reads the rest in a pool thread, so ``threads`` slow
connections per worker still block it (measured: see ``benchmarks/bench_api.py``).

:class:`BufferedSyncWorker` keeps the sync worker's request handling (one request at a time,
in the worker's own thread: the fastest here for ``GET /data``) and puts a non-blocking reader
in front of it, like a buffering reverse proxy:

- every accepted connection is read without blocking, from one ``selectors`` loop, until its
  request is complete: the head up to the blank line, then the body (``Content-Length`` bytes or
  the last chunk); only then is it handed to the WSGI app, whose reads then never wait;
- a request must arrive whole within ``request_timeout`` seconds of the connection (the head
  within ``header_timeout``), else the connection is closed;
- at most ``max_pending`` connections (and ``max_pending_bytes`` of buffered requests) wait per
  worker: past that the oldest waiting one is closed, so a flood of slow connections costs the
  flooder its oldest connections, not the service its capacity;
- a body over ``max_body`` (the app's own limit) is not buffered: the request goes to the app
  with the head alone, and the app refuses it (413) without reading the body; a chunked body of
  more than :data:`MAX_CHUNKS` chunks is handed over when that many have arrived (walking
  millions of tiny chunks would cost seconds of CPU): the rest is read with the send timeout;
- the response is written with a socket timeout (``send_timeout``): a client that stops reading
  cannot hold the worker either;
- an answered HTTP/1.1 connection is kept (keep-alive): it goes back to the loop as a waiting
  connection, under the same limits, closed after gunicorn's ``keepalive`` seconds without a
  next request and answered ``Connection: close`` after ``max_keepalive_requests`` requests
  (so clients spread over the workers again). Only where the request's end is known exactly;
  requests sent ahead (pipelined) are served in order on the loop's next turns.

Per request (issue 10's ``GET /data`` target, see docs/DESIGN.md "Server per-request cost"): the
plainest heads are read by :mod:`twinlib.api.http1` instead of gunicorn's parser, the head of a
response leaves with its body in one send, response headers gunicorn accepted once are not
checked again, and ``Date`` is formatted once a second.

Errors gunicorn itself answers (a request line over the limit: 414; a malformed header: 400;
too many headers: 431) are JSON in the API's error shape, with the same security headers as
every API response, instead of gunicorn's HTML page.
"""
from __future__ import annotations

import errno
import inspect
import os
import re
import selectors
import socket
import ssl
import time
from collections import deque
from datetime import datetime

import orjson
from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidChunkSize,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidProxyLine,
    InvalidRequestLine,
    InvalidRequestMethod,
    InvalidSchemeHeaders,
    LimitRequestHeaders,
    LimitRequestLine,
    ObsoleteFolding,
    UnsupportedTransferCoding,
)
from gunicorn.workers.sync import SyncWorker

from twinlib.api.http1 import SimpleParser, SimpleRequest
from twinlib.api.security import SECURITY_HEADERS

__all__ = ["BufferedSyncWorker", "request_complete", "LIMITS"]

#: Defaults (seconds, counts, bytes); :meth:`BufferedSyncWorker.configure` changes them
#: before gunicorn forks its workers.
LIMITS = {
    "header_timeout": 10.0,
    "request_timeout": 60.0,
    "send_timeout": 30.0,
    "max_pending": 1000,
    "max_pending_bytes": 64 * 1024 * 1024,
    "max_body": 16 * 1024 * 1024,
    "linger_timeout": 2.0,
    "max_keepalive_requests": 100,
}

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]{1,20})[ \t]*(?=\r\n)", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.I)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue[ \t]*\r\n", re.I)


_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r\n")
#: Chunks walked per request before the request is handed over as it is (the parser then reads
#: the rest, blocking with the send timeout): a body of millions of 1-byte chunks would
#: otherwise cost seconds of CPU to walk.
MAX_CHUNKS = 65_536


def _chunked_scan(buf, pos: int, budget: int = MAX_CHUNKS) -> tuple[str, int, int]:
    """Walk chunked framing from ``pos`` (the start of a chunk-size line).

    Returns ``(state, pos, chunks walked)``: ``"done"`` and the body's end, ``"bad"`` (not
    chunked framing, or more than ``budget`` chunks: hand it over, gunicorn's parser answers) or
    ``"more"`` and the position to resume from once more bytes arrived, so the body is walked
    once, not once per read.
    """
    n = len(buf)
    match = _CHUNK_LINE.match
    for k in range(budget):
        m = match(buf, pos)
        if m is None:
            broken = buf.find(b"\r\n", pos, pos + 1024) >= 0 or n - pos >= 1024
            return ("bad" if broken else "more"), pos, k
        size = int(m.group(1), 16)
        eol = m.end() - 2
        if size == 0:  # then trailer lines, then an empty line
            if n < eol + 4:
                return "more", pos, k
            if buf[eol + 2:eol + 4] == b"\r\n":
                return "done", eol + 4, k
            end = buf.find(_HEAD_END, eol)
            return ("more", pos, k) if end < 0 else ("done", end + 4, k)
        nxt = m.end() + size + 2
        if nxt > n:
            return "more", pos, k
        pos = nxt
    return "bad", pos, budget


class _Framing:
    """Where a request being read stands: its head's end, then how its body is framed."""

    __slots__ = ("head_end", "searched", "chunk_pos", "length", "chunked", "chunks", "end")

    def __init__(self):
        self.end = -1          # where the request ends once complete (-1: unknown, or too big)
        self.head_end = -1
        self.searched = 0      # the head's end is not before this offset
        self.chunk_pos = -1    # chunked: the next chunk-size line
        self.length = 0        # Content-Length (0: none)
        self.chunked = False
        self.chunks = 0        # chunked: chunks walked so far

    def complete(self, buf, max_head: int, max_body: int) -> bool:
        """Whether ``buf`` holds a whole request, or enough to answer it (see request_complete)."""
        if self.head_end < 0:
            i = buf.find(_HEAD_END, max(0, self.searched - 3))
            if i < 0:
                self.searched = len(buf)
                return len(buf) > max_head
            self.head_end = i
            head = bytes(buf[:i + 2])  # keep the last header's CRLF for the patterns
            if _CHUNKED.search(head):
                self.chunked, self.chunk_pos = True, i + 4
            else:
                m = _CONTENT_LENGTH.search(head)
                self.length = int(m.group(1)) if m else 0
        body_start = self.head_end + 4
        if self.chunked:
            state, self.chunk_pos, walked = _chunked_scan(buf, self.chunk_pos,
                                                          MAX_CHUNKS - self.chunks)
            self.chunks += walked
            if state == "done" and self.chunk_pos - body_start <= max_body:
                self.end = self.chunk_pos
            return state != "more" or len(buf) - body_start > max_body
        if self.length > max_body:
            return True
        if len(buf) - body_start >= self.length:
            self.end = body_start + self.length
            return True
        return False


def request_complete(buf: bytes, max_head: int, max_body: int) -> bool:
    """Whether ``buf`` holds a whole HTTP/1 request (or enough to answer it without more).

    True also when the head is over ``max_head`` (gunicorn refuses it: 414/431), when the
    declared body is over ``max_body`` (the app refuses it: 413), or when the framing is broken
    (gunicorn refuses it: 400) — in each case the answer needs no more bytes.
    """
    return _Framing().complete(buf, max_head, max_body)


class _Pending:
    """A connection whose request is still arriving (or, ``kept``, whose next one may come)."""

    __slots__ = ("sock", "addr", "listener", "buf", "started", "continued", "framing", "kept",
                 "served")

    def __init__(self, sock, addr, listener, kept: bool = False, served: int = 0):
        self.sock = sock
        self.addr = addr
        self.listener = listener
        self.buf = bytearray()
        self.started = time.monotonic()
        self.continued = False
        self.framing = _Framing()
        self.kept = kept  # kept alive after an answer: idle until its next request starts
        self.served = served  # requests answered on this connection so far


class _Closing:
    """A connection whose response is sent: wait (without blocking) for the client to close."""

    __slots__ = ("sock", "deadline", "drained")

    def __init__(self, sock, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.drained = 0


class _Buffered:
    """The socket as gunicorn's parser sees it: the buffered bytes first, then the socket.

    ``whole``: the bytes are the complete request, so nothing is ever read from the socket
    (whatever follows belongs to the next request on a kept-alive connection); a parser that
    wants more than the framing said meets the end of the data instead.
    """

    def __init__(self, data: bytes, sock, whole: bool = False):
        self._data = memoryview(data)
        self._pos = 0
        self._sock = sock
        self._whole = whole

    def recv(self, size: int) -> bytes:
        if self._pos < len(self._data):  # an offset, not a slice of the rest: 16 MiB stays O(n)
            out = self._data[self._pos:self._pos + size].tobytes()
            self._pos += len(out)
            return out
        return b"" if self._whole else self._sock.recv(size)


#: Response header pairs already accepted by gunicorn's checks -> the pair as it appends it.
_HEADERS_SEEN: dict[tuple, tuple] = {}
_STATEFUL_HEADERS = frozenset(util.hop_headers) | {"content-length"}
_DATE = [0, ""]


def _http_date() -> str:
    """gunicorn's ``Date`` value (``util.http_date()``), formatted once per second."""
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[1] = util.http_date(now)
        _DATE[0] = now
    return _DATE[1]


class _Response(wsgi.Response):
    """gunicorn's response, putting its head on the wire together with the first body bytes.

    gunicorn sends the head and the body with two ``sendall`` calls: two segments, two
    wake-ups of the client for one small answer. Here the head waits for the body's first
    bytes (or the end of the response) and leaves in the same call.
    """

    _head = None

    def process_headers(self, headers):
        """gunicorn's checks, each distinct ordinary header checked once per worker.

        An app sends the same few headers with nearly every answer (type, security headers,
        Vary): a ``(name, value)`` pair already accepted is appended as gunicorn appended it.
        ``Content-Length`` and hop-by-hop names always take gunicorn's way (they set state).
        """
        seen = _HEADERS_SEEN
        for item in headers:
            kept = seen.get(item) if type(item) is tuple else None
            if kept is not None:
                self.headers.append(kept)
                continue
            n = len(self.headers)
            super().process_headers((item,))  # raises as gunicorn does
            added = self.headers[n:]
            if (type(item) is tuple and len(added) == 1
                    and added[0][0].lower() not in _STATEFUL_HEADERS):
                if len(seen) >= 1024:
                    seen.clear()
                seen[item] = added[0]

    def default_headers(self):
        """gunicorn's status line and default headers, the Date text made once a second."""
        if self.upgrade:
            connection = "upgrade"
        elif self.should_close():
            connection = "close"
        else:
            connection = "keep-alive"
        headers = [
            "HTTP/%s.%s %s\r\n" % (self.req.version[0], self.req.version[1], self.status),
            "Server: %s\r\n" % self.version,
            "Date: %s\r\n" % _http_date(),
            "Connection: %s\r\n" % connection,
        ]
        if self.chunked:
            headers.append("Transfer-Encoding: chunked\r\n")
        return headers

    def send_headers(self):
        if self.headers_sent:
            return
        tosend = self.default_headers()
        tosend.extend(["%s: %s\r\n" % (k, v) for k, v in self.headers])
        self._head = ("%s\r\n" % "".join(tosend)).encode("latin-1")
        self.headers_sent = True

    def _emit_body(self, data):
        head, self._head = self._head, None
        if self.chunked:
            data = b"%X\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(data if head is None else head + data)

    def can_sendfile(self):
        return False  # sendfile would bypass the held head; files go through write()

    def close(self):
        if not self.headers_sent:
            self.send_headers()
        if self.chunked:
            self._emit_body(b"")  # the last chunk
        elif self._head is not None:
            head, self._head = self._head, None
            self.sock.sendall(head)


#: gunicorn builds responses of a given class since 27 (for HTTP/2), with body bytes leaving
#: through ``_emit_body``; with an older gunicorn its own response class is used as it is.
_CREATE_KW = ({"response_class": _Response}
              if "response_class" in inspect.signature(wsgi.create).parameters
              and hasattr(wsgi.Response, "_emit_body") else {})

_STATUS = (
    (LimitRequestLine, 414, "URI Too Long"),
    (LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (UnsupportedTransferCoding, 501, "Not Implemented"),
    (ExpectationFailed, 417, "Expectation Failed"),
    (ForbiddenProxyRequest, 403, "Forbidden"),
    (ConfigurationProblem, 500, "Internal Server Error"),
    ((InvalidRequestLine, InvalidRequestMethod, InvalidHTTPVersion, InvalidHeader,
      InvalidHeaderName, InvalidProxyLine, InvalidSchemeHeaders, ObsoleteFolding,
      InvalidChunkSize, http.errors.ChunkMissingTerminator, http.errors.InvalidChunkExtension),
     400, "Bad Request"),
)


def error_bytes(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP response carrying the API's JSON error shape."""
    body = orjson.dumps({"status": status, "error": reason, "message": message})
    head = [f"HTTP/1.1 {status} {reason}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in SECURITY_HEADERS)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class BufferedSyncWorker(SyncWorker):
    """gunicorn's sync worker behind a non-blocking reader of whole requests (see module doc)."""

    header_timeout = LIMITS["header_timeout"]
    request_timeout = LIMITS["request_timeout"]
    send_timeout = LIMITS["send_timeout"]
    max_pending = LIMITS["max_pending"]
    max_pending_bytes = LIMITS["max_pending_bytes"]
    max_body = LIMITS["max_body"]
    linger_timeout = LIMITS["linger_timeout"]
    max_keepalive_requests = LIMITS["max_keepalive_requests"]

    @classmethod
    def configure(cls, **limits) -> None:
        """Change the limits (names of :data:`LIMITS`) for workers forked from now on."""
        for key, value in limits.items():
            if key not in LIMITS:
                raise TypeError(f"unknown worker limit {key!r}")
            setattr(cls, key, type(LIMITS[key])(value))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        # The most a valid head can be: request line plus every header field at its limit.
        self.max_head = (cfg.limit_request_line or 8190) + 4 + \
            (cfg.limit_request_fields or 100) * ((cfg.limit_request_field_size or 8190) + 2) + 2
        self._pending: dict[int, _Pending] = {}   # fd -> connection, oldest first
        self._pending_bytes = 0
        self._closing: dict[int, _Closing] = {}   # fd -> answered connection, oldest first
        self._socknames: dict = {}                # listener -> its address (one syscall, once)
        self._ready: deque[_Pending] = deque()    # pipelined requests already whole
        self._next_expire = 0.0
        self._may_keep = False
        # Keep-alive needs each request parsed on its own (PROXY protocol heads only the first).
        self._keepalive_ok = cfg.proxy_protocol in (None, False, "off")
        self.keepalive = float(cfg.keepalive or 0)
        self._simple = SimpleParser(cfg) if self._keepalive_ok else None
        self._base_environ = None  # made in the worker process (it holds the log streams)

    # -- the loop --------------------------------------------------------------------------
    def run(self):
        if self.cfg.is_ssl:  # TLS needs its handshake first; keep gunicorn's own loop
            return super().run()
        for s in self.sockets:
            s.setblocking(False)
        if (self._simple is not None and _CREATE_KW and not os.environ.get("SCRIPT_NAME")
                and hasattr(wsgi, "_make_early_hints_callback")):
            self._base_environ = wsgi.base_environ(self.cfg)
        self._sel = selectors.DefaultSelector()
        for s in self.sockets:
            self._sel.register(s, selectors.EVENT_READ, None)
        self._sel.register(self.PIPE[0], selectors.EVENT_READ, "pipe")
        beat = 0.0  # when the heartbeat and the parent were last checked (syscalls: ~1/s)
        try:
            while self.alive:
                now = time.monotonic()
                if now - beat >= 1.0:
                    beat = now
                    self.notify()
                    if not self.is_parent_alive():
                        break
                for key, _ in self._sel.select(0 if self._ready else self._next_timeout()):
                    if key.data is None:
                        self._accept(key.fileobj)
                    elif key.data == "pipe":
                        try:
                            os.read(self.PIPE[0], 512)
                        except OSError:
                            pass
                    elif isinstance(key.data, _Closing):
                        self._drain(key.data)
                    else:
                        self._read(key.data)
                    if not self.alive:
                        break
                # Pipelined requests already buffered: one each per turn, after the sockets.
                for _ in range(len(self._ready)):
                    if not self.alive:
                        break
                    self._serve(self._ready.popleft())
                if time.monotonic() >= self._next_expire:
                    self._expire()
        finally:
            while self._ready:
                util.close(self._ready.popleft().sock)
            for p in list(self._pending.values()):
                self._drop(p)
            for c in list(self._closing.values()):
                self._close(c)
            self._sel.close()

    def _next_timeout(self) -> float:
        timeout = min(1.0, self.timeout / 2.0) if self.timeout else 1.0
        if self._pending or self._closing:
            timeout = min(timeout, 0.25)  # deadlines are checked this often
        return timeout

    def _accept(self, listener) -> None:
        for _ in range(64):  # then serve what is readable; the listener stays readable
            try:
                sock, addr = listener.accept()
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    return
                raise
            sock.setblocking(False)  # Python's accept already made it close-on-exec (PEP 446)
            p = _Pending(sock, addr, listener)
            # Most clients send the request with the connection: answer it at once.
            if not self._read(p, registered=False):
                self._sel.register(sock, selectors.EVENT_READ, p)
                self._pending[sock.fileno()] = p
                self._pending_bytes += len(p.buf)
                while len(self._pending) > self.max_pending:
                    self._drop(next(iter(self._pending.values())))
            if not self.alive:
                return

    def _read(self, p: _Pending, registered: bool = True) -> bool:
        """Read what has arrived; handle the request when whole. True when ``p`` is done."""
        while True:
            try:
                data = p.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self._drop(p)
                return True
            if not data:  # the client gave up before finishing its request
                self._drop(p)
                return True
            p.buf += data
            if registered:
                self._pending_bytes += len(data)
            if p.framing.complete(p.buf, self.max_head, self.max_body):
                self._forget(p)
                self._serve(p)
                return True
            if not p.continued:
                self._maybe_continue(p)
            if registered:
                while self._pending_bytes > self.max_pending_bytes and self._pending:
                    oldest = next(iter(self._pending.values()))
                    self._drop(oldest)
                    if oldest is p:
                        return True
            if len(data) < 65536:
                return False

    def _maybe_continue(self, p: _Pending) -> None:
        """Tell a client waiting for "100 Continue" to send its body (curl waits 1 s otherwise).

        gunicorn sends its own when the app starts; a second 1xx is allowed (RFC 9110 §15.2).
        """
        head_end = p.framing.head_end
        if head_end < 0:
            return
        p.continued = True
        if _EXPECT_CONTINUE.search(p.buf, 0, head_end + 2) and b" HTTP/1.0\r\n" not in p.buf[:head_end]:
            try:
                p.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                pass

    def _expire(self) -> None:
        now = time.monotonic()
        self._next_expire = now + 0.05  # deadlines are seconds: no need to look every turn
        for c in list(self._closing.values()):
            if c.deadline > now:
                break
            self._close(c)
        keepalive = self.keepalive
        calm = min(self.header_timeout, keepalive) if keepalive > 0 else self.header_timeout
        for p in list(self._pending.values()):  # oldest first
            age = now - p.started
            if age > self.request_timeout:
                self._drop(p)
            elif age > self.header_timeout and _HEAD_END not in p.buf:
                self._drop(p)
            elif p.kept and not p.buf and age > keepalive:
                self._drop(p)  # idle past the keep-alive timeout: no request is coming
            elif age <= calm:
                break  # the rest arrived later still

    def _forget(self, p: _Pending) -> None:
        if self._pending.pop(p.sock.fileno(), None) is not None:
            self._pending_bytes -= len(p.buf)
            try:
                self._sel.unregister(p.sock)
            except (KeyError, ValueError):
                pass

    def _drop(self, p: _Pending) -> None:
        self._forget(p)
        util.close(p.sock)

    # -- one request -----------------------------------------------------------------------
    def _serve(self, p: _Pending) -> None:
        """Answer ``p``'s request; then keep the connection for the next one, or close it."""
        sock = p.sock
        sock.setblocking(True)
        sock.settimeout(self.send_timeout)
        req = None
        end = p.framing.end
        # Keep the connection only where the request's end is known exactly, so the next
        # request starts where this one ends (never for refused heads or bodies).
        self._may_keep = (end >= 0 and self.keepalive > 0 and self._keepalive_ok
                          and p.served + 1 < self.max_keepalive_requests)
        keep = False
        try:
            if self._may_keep:
                data, rest = bytes(p.buf[:end]), bytes(p.buf[end:])
            else:
                data, rest = bytes(p.buf), b""
            p.buf = bytearray()
            # The plainest requests (GET/HEAD, no body, ordinary headers) by the strict reader;
            # everything else, and whatever it declines, by gunicorn's parser.
            if self._simple is not None and end == p.framing.head_end + 4:
                req = self._simple.parse(data)
            if req is None:
                parser = http.get_parser(self.cfg, _Buffered(data, sock, whole=self._may_keep),
                                         p.addr)
                req = next(parser)
            keep = self.handle_request(p.listener, req, sock, p.addr)
        except http.errors.NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except StopIteration as e:
            self.log.debug("Closing connection. %s", e)
        except (socket.timeout, TimeoutError):
            self.log.debug("Client too slow to read its response: connection closed")
        except ssl.SSLError as e:  # pragma: no cover - no TLS in this loop
            self.handle_error(req, sock, p.addr, e)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except BaseException as e:
            self.handle_error(req, sock, p.addr, e)
        if keep and self.alive:
            self._keep(p, rest)
        else:
            self._linger(sock)

    def _keep(self, p: _Pending, rest: bytes) -> None:
        """Wait (in the loop, not blocking) for the next request on an answered connection.

        Its socket goes back to the selector like a new connection's (the same limits and
        timeouts, plus the keep-alive timeout while nothing arrives), so the worker serves
        others meanwhile. A next request that came with this one (pipelined) is served on
        the loop's next turn, after the sockets that are ready.
        """
        sock = p.sock
        try:
            sock.setblocking(False)
        except OSError:
            util.close(sock)
            return
        q = _Pending(sock, p.addr, p.listener, kept=True, served=p.served + 1)
        if rest:
            q.buf += rest
            if q.framing.complete(q.buf, self.max_head, self.max_body):
                self._ready.append(q)
                return
        self._sel.register(sock, selectors.EVENT_READ, q)
        self._pending[sock.fileno()] = q
        self._pending_bytes += len(q.buf)
        while len(self._pending) > self.max_pending:
            self._drop(next(iter(self._pending.values())))

    def _simple_environ(self, req: SimpleRequest, sock, client, server):
        """``gunicorn.http.wsgi.create`` for a :class:`SimpleRequest` from a TCP peer (no body,
        no repeated or underscored or forwarding headers, no SCRIPT_NAME): the same environ,
        without rebuilding the constant part each time (``tests/api/test_worker.py`` compares
        the two)."""
        resp = _Response(req, sock, self.cfg)
        env = self._base_environ.copy()
        env["wsgi.input"] = req.body
        env["gunicorn.socket"] = sock
        env["REQUEST_METHOD"] = req.method
        env["QUERY_STRING"] = req.query
        env["RAW_URI"] = req.uri
        env["SERVER_PROTOCOL"] = "HTTP/1.%d" % req.version[1]
        for name, value in req.headers:
            if name == "CONTENT-TYPE":
                env["CONTENT_TYPE"] = value
            else:
                env["HTTP_" + name.replace("-", "_")] = value
        env["wsgi.url_scheme"] = "http"
        env["REMOTE_ADDR"] = client[0]
        env["REMOTE_PORT"] = str(client[1])
        env["SERVER_NAME"] = server[0]
        env["SERVER_PORT"] = str(server[1])
        env["PATH_INFO"] = util.unquote_to_wsgi_str(req.path)
        env["SCRIPT_NAME"] = ""
        env["wsgi.early_hints"] = wsgi._make_early_hints_callback(req, sock, resp)
        return resp, env

    def handle_request(self, listener, req, client, addr) -> bool:
        """gunicorn's sync ``handle_request``, with keep-alive and one send per small answer.

        Returns whether the connection may carry another request (the answer was framed,
        neither side asked to close, and this worker goes on).
        """
        environ = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now() if getattr(self.log, "access_log_enabled", True) else None
            server = self._socknames.get(listener)
            if server is None:
                server = self._socknames[listener] = listener.getsockname()
            if (type(req) is SimpleRequest and self._base_environ is not None
                    and type(addr) is tuple and type(server) is tuple):
                resp, environ = self._simple_environ(req, client, addr, server)
            else:
                resp, environ = wsgi.create(req, client, addr, server, self.cfg, **_CREATE_KW)
            if not self._may_keep:
                resp.force_close()
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                if request_start is not None:
                    self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            return not resp.should_close()
        except OSError:
            raise
        except (Exception, SystemExit):
            if resp and resp.headers_sent:
                # The answer has started: a second one on the same connection would corrupt it.
                self.log.exception("Error handling request")
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")

    # -- closing ---------------------------------------------------------------------------
    def _linger(self, sock) -> None:
        """Half-close and let the loop drain what the client still sends (RFC 9112 §9.6).

        gunicorn's ``close_graceful`` waits for that in the worker (up to 2 s): a client that
        never closes would hold the worker that long per request.
        """
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            util.close(sock)
            return
        c = _Closing(sock, time.monotonic() + self.linger_timeout)
        if self._drain(c, registered=False):
            return
        self._sel.register(sock, selectors.EVENT_READ, c)
        self._closing[sock.fileno()] = c
        while len(self._closing) > self.max_pending:
            self._close(next(iter(self._closing.values())))

    def _drain(self, c: _Closing, registered: bool = True) -> bool:
        """Read and discard; close on the client's close. True when ``c`` is closed."""
        while True:
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                data = b""
            c.drained += len(data)
            if not data or c.drained > 4 << 20:  # the deadline bounds it too
                self._close(c)
                return True

    def _close(self, c: _Closing) -> None:
        if self._closing.pop(c.sock.fileno(), None) is not None:
            try:
                self._sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        util.close(c.sock)

    def handle_error(self, req, client, addr, exc):
        """gunicorn's own refusals as JSON (the app's errors never get here: Flask answers them)."""
        for kinds, status, reason in _STATUS:
            if isinstance(exc, kinds):
                break
        else:
            status, reason = 500, "Internal Server Error"
        addr = addr or ("", -1)
        if status == 500:
            self.log.exception("Error handling request")
            message = "internal error (logged on the server)"
        else:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
            message = str(exc)
        try:
            util.write(client, error_bytes(status, reason, message))
        except Exception:
            self.log.debug("Failed to send error message.")
