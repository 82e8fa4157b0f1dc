"""``POST /readings``: store a batch of readings sent as JSON, through the one validation path.

The body is ``{"readings": [{"asset_id", "timestamp", "temperature", ...}, ...]}``. Its *shape*
is checked here (a reading must be an object with the declared JSON types; otherwise the whole
batch is refused with a 400 naming the field). Its *values* go through
:func:`twinlib.ingest.ingest_frame` like a CSV import: out-of-range, unparseable or duplicate
readings are reported in ``rejected`` by position, the rest are stored, and sending the same
batch again stores nothing twice.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from twinlib.api import schemas as S
from twinlib.api.auth import require_token
from twinlib.api.errors import ApiError
from twinlib.api.jsonio import json_response, read_json_body
from twinlib.api.openapi import doc
from twinlib.api.stores import read_store, write_with_retry
from twinlib.config import SettingsError
from twinlib.ingest import ingest_frame
from twinlib.ingest.jsonreading import decode_readings, rows_to_frame
from twinlib.kinds import DEFAULT_KIND, Kind

__all__ = ["bp", "MAX_BATCH", "batch_to_frame"]

bp = Blueprint("ingest", __name__)

#: Readings per request; larger loads belong in several requests or a CSV import.
MAX_BATCH = 10_000


def batch_to_frame(items: list, kind: Kind | None = None):
    """Check the JSON shape of a batch and turn it into a frame for ``ingest_frame``.

    The shape rules are :mod:`twinlib.ingest.jsonreading`'s, shared with MQTT; the number fields
    are ``kind``'s signals (default: the pump's). Returns the frame (row *i* = ``items[i]``) and
    notes about ignored fields. Raises :class:`ApiError` (400) naming the first field with a
    wrong JSON type: a batch is refused whole.
    """
    extra = {} if kind is None else {"signals": kind.measured, "state": kind.state}
    decoded = decode_readings(items, **extra)
    if decoded.problems:
        first = decoded.problems[0]
        raise ApiError(400, first.text(), parameter=first.where())
    notes = ([f"ignored unknown field(s): {', '.join(sorted(decoded.unknown))}"]
             if decoded.unknown else [])
    return rows_to_frame(decoded.rows, **extra), notes


def _kinds_of(items: list) -> dict[str, list[int]]:
    """Reading positions by the kind of their asset: the reading's own ``kind`` field, else the
    settings file's or the store's word for the asset, else the pump."""
    settings = current_app.extensions["twinlib.settings"]
    try:
        store = read_store()
    except Exception:  # no database yet: the write below creates nothing and answers 503
        store = None
    stored: dict[str, str | None] = {}
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        name = None
        if isinstance(item, dict):
            name = item.get("kind")
            if name is not None and (not isinstance(name, str) or name not in settings.kinds):
                raise ApiError(400, f"readings[{i}].kind: unknown kind {str(name)[:64]!r} (known: "
                                    f"{', '.join(settings.kinds)})", parameter=f"readings[{i}].kind")
            asset = item.get("asset_id")
            if name is None and isinstance(asset, str):
                if asset not in stored:
                    meta = store.asset(asset) if store is not None else None
                    stored[asset] = meta["kind"] if meta else None
                try:
                    name = settings.kind_for(asset, stored[asset]).name
                except SettingsError:
                    name = None
        groups.setdefault(name or DEFAULT_KIND, []).append(i)
    return groups


@bp.post("/readings")
@doc(tags=["readings"], operation_id="postReadings",
     description=(
         "Each reading is validated; valid ones are stored, invalid ones are reported in "
         "`rejected` with their position and reason. Sending the same batch again stores "
         "nothing new (`duplicates`). A body that is not a `{\"readings\": [...]}` object "
         "of reading objects with the declared field types is refused whole (400)."),
     requestBody={"required": True, "content": {"application/json": {"schema": S.ref("Batch")}}},
     responses={"200": S.json_body(S.ref("IngestReport"), "What was stored and rejected."),
                "413": S.err("The body is too large."), "415": S.err("The body is not JSON.")})
@require_token
def post_readings():
    """Store a batch of readings (validated like a CSV import; idempotent).

    Validate and store a batch; report what was stored, already there, and refused."""
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
    settings = current_app.extensions["twinlib.settings"]
    groups = _kinds_of(items) or {DEFAULT_KIND: []}  # an empty batch still checks the database
    parts = []
    for name, idx in groups.items():
        kind = settings.kinds[name]
        frame, notes = batch_to_frame([items[i] for i in idx], kind)
        parts.append((kind, idx, frame, notes))
    # Retried while the database is busy (a failed attempt stores nothing; a repeat stores
    # nothing twice), then 503 with Retry-After.
    reports = [(idx, write_with_retry(
        lambda store, k=kind, f=frame: ingest_frame(store, f, source="http", line_offset=0, kind=k,
                                               required=k.measured)))
        for kind, idx, frame, _ in parts]
    notes = [n for *_, ns in parts for n in ns]
    rejected = sorted(((idx[r.line], r.reason) for idx, rep in reports for r in rep.rejects))
    report_notes = [n for _, rep in reports for n in rep.notes]
    return json_response({
        "received": len(items),
        "inserted": sum(rep.inserted for _, rep in reports),
        "duplicates": sum(rep.duplicates for _, rep in reports),
        "rejected": [{"index": i, "reason": why, "raw": items[i]} for i, why in rejected],
        "notes": notes + report_notes,
    })
