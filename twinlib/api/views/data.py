"""``GET /data``: the original contract — the latest readings, newest first.

Timestamps are the seed's ``YYYY-MM-DD HH:MM:SS`` (UTC) in every row, whatever precision is
stored (milliseconds are dropped, so a client parsing the column with one format never meets a
second one); ``?format=iso`` gives ISO 8601 UTC with milliseconds (``…T14:30:00.500Z``) instead.

This is the hot path (thousands of requests a second): one indexed SQLite query through the
store, rows formatted in Python and serialised with orjson. No pandas here. The parameterless
request is usually answered by :mod:`twinlib.api.fastpath` before Flask; this view serves the
rest, and the same request whenever the shortcut steps aside.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from twinlib.api import schemas as S
from twinlib.api.errors import ApiError
from twinlib.api.jsonio import json_response, readings_to_list
from twinlib.api.openapi import doc
from twinlib.api.params import get_choice, get_int, get_range, get_text
from twinlib.api.stores import read_store

__all__ = ["bp", "MAX_LIMIT", "FORMATS"]

MAX_LIMIT = 1000
#: ``format``: ``seconds`` (the seed's form, default) or ``iso`` (full precision, with zone).
FORMATS = ("seconds", "iso")

bp = Blueprint("data", __name__)


@bp.get("/data")
@doc(tags=["readings"], operation_id="getData", params=[
    S.query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10},
            "How many readings (1–1000)."),
    S.ASSET_Q, S.SINCE, S.UNTIL,
    S.query("format", {"type": "string", "enum": list(FORMATS), "default": "seconds"},
            "`seconds` (default): `YYYY-MM-DD HH:MM:SS` in every row, the original form; "
            "`iso`: ISO 8601 UTC with milliseconds."),
], responses={"200": S.json_body({"type": "array", "items": S.ref("Reading")},
                                 "The readings, newest first."),
              **S.ASSET_404})
def get_data():
    """Latest readings, newest first (the original contract).

    The latest ``limit`` readings (default 10), optionally of one asset and time range."""
    if request.args:
        limit = get_int("limit", 10, 1, MAX_LIMIT)
        asset = get_text("asset")
        since, until = get_range()
        iso = get_choice("format", FORMATS, "seconds") == "iso"
    else:  # the original's request, thousands a second: skip the parsing
        limit, asset, since, until, iso = 10, None, None, None, False
    store = read_store()
    rows = store.latest(limit, asset=asset, since=since, until=until)
    # Only an empty answer can hide an unknown asset; checking then keeps the hot path one query.
    if not rows and asset is not None and not store.has_asset(asset):
        raise ApiError(404, f"unknown asset {asset!r}", parameter="asset")
    return json_response(readings_to_list(rows, current_app.extensions["twinlib.settings"].kinds,
                                          iso=iso))
