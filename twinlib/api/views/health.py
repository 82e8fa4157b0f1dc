"""``GET /health``: is the database reachable, and how old is the newest reading."""
from __future__ import annotations

from flask import Blueprint, current_app

from twinlib.api.jsonio import format_optional_ts, json_response
from twinlib.api.stores import read_store
from twinlib.store import StoreMissingError
from twinlib.timeutil import now_ms

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """Database reachable (200) or not (503); the newest reading's time and age in seconds."""
    provider = current_app.extensions["twinlib.stores"]
    # A cached connection outlives a deleted file; health must notice the file is gone.
    if not provider.db_path.exists():
        provider.discard()
        raise StoreMissingError("database file is gone")
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
