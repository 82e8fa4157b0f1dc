"""CORS for browser clients (flask-cors), configured by a list of allowed origins.

``[api] cors_origins`` in the settings file (or ``TWIN_API_CORS_ORIGINS``, comma-separated)
lists the origins allowed to call the API from a browser; ``"*"`` allows any. With no list, no
CORS headers are sent and browsers keep their same-origin rule. With a list of origins every
response carries ``Vary: Origin`` (also those to requests without an ``Origin``, and the fast
path's), so no cache hands one origin's answer to another. Allowed: ``GET``, ``POST`` and
``OPTIONS`` with the ``Authorization`` and ``Content-Type`` headers; preflights are cached for
10 minutes; the ``Link`` and ``ETag`` headers are readable by scripts (paging, revalidation).
"""
from __future__ import annotations

import re

from flask import Flask
from flask_cors import CORS

__all__ = ["parse_origins", "install_cors"]


def parse_origins(value) -> tuple[str, ...]:
    """Origins from a list or a comma-separated string; blanks dropped, trailing ``/`` removed."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(o).strip().rstrip("/") for o in items if str(o).strip())


def install_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer CORS requests from the allowed origins (nothing at all without a list)."""
    if not origins:
        return
    allow_any = "*" in origins
    # Exact origins only: flask-cors reads a string with regex characters as a pattern.
    allowed = "*" if allow_any else [re.compile(re.escape(o) + r"/?\Z") for o in origins]
    CORS(app, origins=allowed, methods=["GET", "POST", "OPTIONS"],
         allow_headers=["Authorization", "Content-Type"], expose_headers=["Link", "ETag"],
         max_age=600, send_wildcard=allow_any, vary_header=not allow_any)
    if not allow_any:
        @app.after_request
        def _vary(response):
            response.vary.add("Origin")
            return response
