"""``POST /readings``: store a batch of readings sent as JSON, through the one validation path.

The body is ``{"readings": [{"asset_id", "timestamp", "temperature", ...}, ...]}``. Its *shape*
is checked here (a reading must be an object with the declared JSON types; otherwise the whole
batch is refused with a 400 naming the field). Its *values* go through
:func:`twinlib.ingest.ingest_frame` like a CSV import: out-of-range, unparseable or duplicate
readings are reported in ``rejected`` by position, the rest are stored, and sending the same
batch again stores nothing twice.
"""
from __future__ import annotations

from flask import Blueprint, request

from twinlib.api.auth import require_token
from twinlib.api.errors import ApiError
from twinlib.api.jsonio import json_response, read_json_body
from twinlib.api.stores import write_with_retry
from twinlib.ingest import ingest_frame
from twinlib.ingest.jsonreading import decode_readings, rows_to_frame

__all__ = ["bp", "MAX_BATCH", "batch_to_frame"]

bp = Blueprint("ingest", __name__)

#: Readings per request; larger loads belong in several requests or a CSV import.
MAX_BATCH = 10_000


def batch_to_frame(items: list):
    """Check the JSON shape of a batch and turn it into a frame for ``ingest_frame``.

    The shape rules are :mod:`twinlib.ingest.jsonreading`'s, shared with MQTT. Returns the
    frame (row *i* = ``items[i]``) and notes about ignored fields. Raises :class:`ApiError`
    (400) naming the first field with a wrong JSON type: a batch is refused whole.
    """
    decoded = decode_readings(items)
    if decoded.problems:
        first = decoded.problems[0]
        raise ApiError(400, first.text(), parameter=first.where())
    notes = ([f"ignored unknown field(s): {', '.join(sorted(decoded.unknown))}"]
             if decoded.unknown else [])
    return rows_to_frame(decoded.rows), notes


@bp.post("/readings")
@require_token
def post_readings():
    """Validate and store a batch; report what was stored, already there, and refused."""
    if not request.is_json:
        raise ApiError(415, "send the batch as application/json", parameter="body")
    body = read_json_body()
    if not isinstance(body, dict) or "readings" not in body:
        raise ApiError(400, 'body must be a JSON object {"readings": [...]}', parameter="body")
    items = body["readings"]
    if not isinstance(items, list):
        raise ApiError(400, "readings must be an array", parameter="readings")
    if len(items) > MAX_BATCH:
        raise ApiError(400, f"at most {MAX_BATCH} readings per request, got {len(items)}",
                       parameter="readings")
    frame, notes = batch_to_frame(items)
    # Retried while the database is busy (a failed attempt stores nothing; a repeat stores
    # nothing twice), then 503 with Retry-After.
    report = write_with_retry(
        lambda store: ingest_frame(store, frame, source="http", line_offset=0))
    return json_response({
        "received": len(items),
        "inserted": report.inserted,
        "duplicates": report.duplicates,
        "rejected": [{"index": r.line, "reason": r.reason, "raw": items[r.line]}
                     for r in report.rejects],
        "notes": notes + list(report.notes),
    })
