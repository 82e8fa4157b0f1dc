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
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import math
import threading
import time
from collections import OrderedDict

from flask import current_app, request

from twinlib.api.errors import ApiError

__all__ = ["require_token", "FailureLimiter", "client_key", "MAX_TRACKED_CLIENTS"]

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

    return wrapped
