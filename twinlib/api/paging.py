"""Cursor pagination: opaque ``cursor`` tokens, ``next`` links.

Every list endpoint takes ``limit`` and ``cursor`` and answers one page. Where there is a
further page the response carries its address twice, the same relative URL (path and query,
so it stays right behind a reverse proxy):

- a ``Link: </assets?limit=100&cursor=…>; rel="next"`` header (RFC 8288), on every paginated
  endpoint — also those whose body is a bare JSON array kept from before paging (``/assets``);
- a ``"next": "/…"`` field in bodies that are JSON objects (``null`` on the last page).

A client follows ``next`` until it is absent or null. The token is opaque (base64url text);
a token this server did not make is a 400 naming ``cursor``.
"""
from __future__ import annotations

import base64
import binascii
from urllib.parse import urlencode

import orjson
from flask import request

from twinlib.api.errors import ApiError

__all__ = ["encode_cursor", "decode_cursor", "get_cursor", "next_url", "link_header",
           "CURSOR_PATTERN"]

#: Every token :func:`encode_cursor` makes matches this (also the OpenAPI ``pattern``).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}$"


def encode_cursor(kind: str, value) -> str:
    """An opaque token for ``value`` (a JSON-able position) on a ``kind`` of list."""
    raw = orjson.dumps([kind, value])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, kind: str):
    """The position inside a token made by :func:`encode_cursor` for ``kind`` (400 otherwise)."""
    try:
        if not token or len(token) > 400:
            raise ValueError
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        got_kind, value = orjson.loads(raw)
        if got_kind != kind:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(400, "cursor is not a cursor this list handed out (follow the `next` "
                            "link as given)", parameter="cursor") from None
    return value


def get_cursor(kind: str):
    """The ``cursor`` parameter decoded (``None`` when absent)."""
    token = request.args.get("cursor")
    return None if token is None else decode_cursor(token, kind)


def next_url(kind: str, value, **overrides) -> str:
    """The current request's path and query with ``cursor`` set to the next page's token."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor" and k not in overrides]
    args += [(k, str(v)) for k, v in overrides.items() if v is not None]
    args.append(("cursor", encode_cursor(kind, value)))
    return f"{request.path}?{urlencode(args)}"


def link_header(url: str | None) -> dict[str, str]:
    """``{"Link": '<url>; rel="next"'}``, or nothing on the last page."""
    return {"Link": f'<{url}>; rel="next"'} if url else {}
