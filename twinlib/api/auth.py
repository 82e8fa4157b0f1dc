"""Bearer-token protection for the API's writes (ingestion, acknowledging alarms).

The token comes from settings (``TWIN_API_TOKEN`` or ``[api] token``). Without a configured
token every write is refused with 403: an open write endpoint on a plant network is worse than
none. A wrong or missing token is a 401 with ``WWW-Authenticate: Bearer``.
"""
from __future__ import annotations

import functools
import hmac

from flask import current_app, request

from twinlib.api.errors import ApiError

__all__ = ["require_token"]


def _check_token() -> None:
    expected = current_app.config.get("API_TOKEN")
    if not expected:
        raise ApiError(403, "writes are disabled: no API token is configured "
                            "(set TWIN_API_TOKEN or [api] token)")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": 'Bearer realm="twinlib"'})
    # Constant-time comparison: the token must not leak through response timing.
    if not hmac.compare_digest(given.strip().encode(), str(expected).encode()):
        raise ApiError(401, "invalid bearer token",
                       headers={"WWW-Authenticate": 'Bearer realm="twinlib", error="invalid_token"'})


def require_token(view):
    """Decorator: the view runs only with the configured bearer token."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        _check_token()
        return view(*args, **kwargs)

    return wrapped
