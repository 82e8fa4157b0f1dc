"""``GET /health``: is the database reachable, and how old is the newest reading."""
from __future__ import annotations

from flask import Blueprint

from twinlib.api import schemas as S
from twinlib.api.jsonio import format_optional_ts, json_response
from twinlib.api.openapi import doc
from twinlib.api.stores import read_store
from twinlib.timeutil import now_ms

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/health")
@doc(tags=["service"], operation_id="health",
     responses={"200": S.json_body(S.ref("Health"), "The database is reachable.")})
def health():
    """Database reachable, and the age of the newest reading.

    200 when reachable, 503 when not; the newest reading's time and age in seconds.

    ``read_store`` checks that the file at the path is the one the connection reads (a deleted
    or replaced file is reopened: a file that is not a twinlib database is a 503).
    """
    store = read_store()
    newest = store.newest_ts()
    now = now_ms()
    return json_response({
        "status": "ok",
        "database": "reachable",
        "max_id": store.max_id(),
        "newest_reading": format_optional_ts(newest),
        "age_s": None if newest is None else round((now - newest) / 1000.0, 3),
        "checked_at": format_optional_ts(now - now % 1000),
    })
