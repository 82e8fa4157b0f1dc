"""Bearer-token protection for the API's writes (ingestion, acknowledging alarms).

The token comes from settings (``TWIN_API_TOKEN`` or ``[api] token``). Without a configured
token every write is refused with 403: an open write endpoint on a plant network is worse than
none. A wrong or missing token is a 401 with ``WWW-Authenticate: Bearer``.

Wrong tokens are counted per client address (an IPv6 client per /64 network) in a fixed window:
past ``AUTH_FAILURES_MAX`` in ``AUTH_FAILURE_WINDOW_S`` every write from that client is a 429
with ``Retry-After`` until the window ends, whatever token it sends — so guessing gains
nothing. The counts live in each worker process (memory bounded: the least recently failing
clients are forgotten past :data:`MAX_TRACKED_CLIENTS`), so with *n* workers a client gets at
most *n* × the limit per window. Behind a reverse proxy every client has the proxy's address:
limit there instead.

**Reads** are open unless a read token is configured (``TWIN_API_READ_TOKEN`` or ``[api]
read_token``; ``twin api`` refuses to bind beyond loopback without one). Then every request
needs ``Authorization: Bearer <read token>`` — or HTTP basic auth with the read token as the
password (any user name; what browsers and ``curl -u`` send) — or the write token, except:

- ``/health`` (liveness for orchestrators and load balancers; it tells only whether the
  database is reachable and the newest reading's age),
- ``/openapi.json`` and ``/docs`` (the API's description, no plant data; Swagger UI then asks
  for the token under *Authorize*),
- CORS preflights (``OPTIONS``: browsers never send credentials on them).

``/metrics`` needs the token like any read (Prometheus: ``authorization`` or ``basic_auth`` in
the scrape config). Wrong read tokens count toward the same per-client limit as wrong write
tokens.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hmac
import ipaddress
import math
import threading
import time
from collections import OrderedDict

from flask import current_app, request

from twinlib.api.errors import ApiError

__all__ = ["require_token", "FailureLimiter", "client_key", "MAX_TRACKED_CLIENTS",
           "install_read_auth", "OPEN_ENDPOINTS", "is_loopback"]

#: Routes anyone may read even when a read token is configured (see the module docstring).
OPEN_ENDPOINTS = frozenset({"/health", "/openapi.json", "/docs", "/docs/",
                            "/docs/<path:filename>"})

#: Clients whose failures are remembered at once, per worker process.
MAX_TRACKED_CLIENTS = 10_000


def client_key(addr: str | None) -> str:
    """The unit a limit applies to: the IPv4 address, or the /64 network of an IPv6 one."""
    if not addr:
        return "?"
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailureLimiter:
    """Failures per client in fixed windows, with bounded memory (thread-safe)."""

    def __init__(self, max_failures: int, window_s: float, max_clients: int = MAX_TRACKED_CLIENTS):
        self.max_failures = int(max_failures)
        self.window_s = float(window_s)
        self.max_clients = int(max_clients)
        self._clients: OrderedDict[str, list] = OrderedDict()  # key -> [window start, count]
        self._lock = threading.Lock()

    def blocked_for(self, key: str, now: float | None = None) -> float:
        """Seconds this client must wait (0.0: not blocked)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._clients.get(key)
            if entry is None or entry[1] < self.max_failures:
                return 0.0
            left = entry[0] + self.window_s - now
            return left if left > 0 else 0.0

    def failed(self, key: str, now: float | None = None) -> None:
        """Count one failure for this client."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._clients.get(key)
            if entry is None or now - entry[0] >= self.window_s:
                entry = [now, 0]
            entry[1] += 1
            self._clients[key] = entry
            self._clients.move_to_end(key)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    def __len__(self) -> int:
        return len(self._clients)


def _check_token() -> None:
    expected = current_app.config.get("API_TOKEN")
    if not expected:
        raise ApiError(403, "writes are disabled: no API token is configured "
                            "(set TWIN_API_TOKEN or [api] token)")
    limiter: FailureLimiter = current_app.extensions["twinlib.auth_failures"]
    client = client_key(request.remote_addr)
    wait = limiter.blocked_for(client)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, f"too many wrong tokens from this client: writes are refused for "
                            f"{seconds} s", headers={"Retry-After": str(seconds)})
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": 'Bearer realm="twinlib"'})
    # Constant-time comparison: the token must not leak through response timing.
    if not hmac.compare_digest(given.strip().encode(), str(expected).encode()):
        limiter.failed(client)
        raise ApiError(401, "invalid bearer token",
                       headers={"WWW-Authenticate": 'Bearer realm="twinlib", error="invalid_token"'})


def require_token(view):
    """Decorator: the view runs only with the configured bearer token."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        _check_token()
        return view(*args, **kwargs)

    wrapped._twin_write = True
    return wrapped


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _given_secret(header: str) -> str | None:
    """The secret a client sent: the bearer token, or the password of basic auth."""
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


def _matches(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), str(expected).encode())


def _check_read() -> None:
    limiter: FailureLimiter = current_app.extensions["twinlib.auth_failures"]
    client = client_key(request.remote_addr)
    wait = limiter.blocked_for(client)
    challenge = 'Bearer realm="twinlib", Basic realm="twinlib", charset="UTF-8"'
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, f"too many wrong tokens from this client: requests are refused for "
                            f"{seconds} s", headers={"Retry-After": str(seconds)})
    header = request.headers.get("Authorization", "")
    if not header.strip():
        raise ApiError(401, "this API needs a read token: send Authorization: Bearer <token> "
                            "(or basic auth with the token as password)",
                       headers={"WWW-Authenticate": challenge})
    given = _given_secret(header)
    if given is None or not (_matches(given, current_app.config.get("API_READ_TOKEN"))
                             or _matches(given, current_app.config.get("API_TOKEN"))):
        limiter.failed(client)
        raise ApiError(401, "invalid read token", headers={"WWW-Authenticate": challenge})


def install_read_auth(app) -> None:
    """Require the read token on every request but the open ones, when one is configured."""
    if not app.config.get("API_READ_TOKEN"):
        return

    @app.before_request
    def _read_auth():
        if request.method == "OPTIONS":
            return None
        rule = request.url_rule.rule if request.url_rule is not None else None
        if rule in OPEN_ENDPOINTS:
            return None
        # Writes check their own (write) token; everything else is a read.
        view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
        if view is not None and getattr(view, "_twin_write", False):
            return None
        _check_read()
        return None
