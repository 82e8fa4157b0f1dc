"""``GET /data``: the original contract — the latest readings, newest first.

This is the hot path (thousands of requests a second): one indexed SQLite query through the
store, rows formatted in Python and serialised with orjson. No pandas here. The parameterless
request is usually answered by :mod:`twinlib.api.fastpath` before Flask; this view serves the
rest, and the same request whenever the shortcut steps aside.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from twinlib.api.errors import ApiError
from twinlib.api.jsonio import json_response, readings_to_list
from twinlib.api.params import get_int, get_range, get_text
from twinlib.api.stores import read_store

__all__ = ["bp", "MAX_LIMIT"]

MAX_LIMIT = 1000

bp = Blueprint("data", __name__)


@bp.get("/data")
def get_data():
    """The latest ``limit`` readings (default 10), newest first, optionally filtered."""
    if request.args:
        limit = get_int("limit", 10, 1, MAX_LIMIT)
        asset = get_text("asset")
        since, until = get_range()
    else:  # the original's request, thousands a second: skip the parsing
        limit, asset, since, until = 10, None, None, None
    store = read_store()
    rows = store.latest(limit, asset=asset, since=since, until=until)
    # Only an empty answer can hide an unknown asset; checking then keeps the hot path one query.
    if not rows and asset is not None and not store.has_asset(asset):
        raise ApiError(404, f"unknown asset {asset!r}", parameter="asset")
    return json_response(readings_to_list(rows, current_app.extensions["twinlib.settings"].kinds))
