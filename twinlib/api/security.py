"""Security headers on every API response (Flask's, the fast path's and gunicorn's own errors).

The API serves JSON and CSV only, never a page, so the headers say so as strictly as browsers
allow: no MIME sniffing (a JSON body with user text is never run as HTML or script), no framing,
no referrer, no caching of answers that may carry plant data by shared caches, and a CSP that
permits nothing in case a browser renders a response anyway.
"""
from __future__ import annotations

from flask import Flask

__all__ = ["SECURITY_HEADERS", "install_security_headers"]

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


def install_security_headers(app: Flask) -> None:
    """Add :data:`SECURITY_HEADERS` to every Flask response (a view's own value wins)."""

    @app.after_request
    def _security_headers(response):
        for key, value in SECURITY_HEADERS:
            response.headers.setdefault(key, value)
        return response
