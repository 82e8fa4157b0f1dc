"""CORS for browser clients, configured by a list of allowed origins (no extra dependency).

``[api] cors_origins`` in the settings file (or ``TWIN_API_CORS_ORIGINS``, comma-separated)
lists the origins allowed to call the API from a browser; ``"*"`` allows any. With no list, no
CORS headers are sent and browsers keep their same-origin rule. With a list of origins every
response carries ``Vary: Origin`` (also those to requests without an ``Origin``, and the fast
path's), so no cache hands one origin's answer to another.
"""
from __future__ import annotations

from flask import Flask, request

__all__ = ["parse_origins", "install_cors"]

_ALLOW_METHODS = "GET, POST, OPTIONS"
_ALLOW_HEADERS = "Authorization, Content-Type"


def parse_origins(value) -> tuple[str, ...]:
    """Origins from a list or a comma-separated string; blanks dropped, trailing ``/`` removed."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(o).strip().rstrip("/") for o in items if str(o).strip())


def install_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Add CORS headers to responses for requests from an allowed origin."""
    if not origins:
        return
    allow_any = "*" in origins
    allowed = frozenset(origins)

    @app.after_request
    def _cors(response):
        if not allow_any:
            response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin is None:
            return response
        if allow_any:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin.rstrip("/") in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
        else:
            return response
        if request.method == "OPTIONS":  # preflight
            response.headers["Access-Control-Allow-Methods"] = _ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = _ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response
