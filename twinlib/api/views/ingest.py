"""``POST /readings``: store a batch of readings sent as JSON, through the one validation path.

The body is ``{"readings": [{"asset_id", "timestamp", "temperature", ...}, ...]}``. Its *shape*
is checked here (a reading must be an object with the declared JSON types; otherwise the whole
batch is refused with a 400 naming the field). Its *values* go through
:func:`twinlib.ingest.ingest_frame` like a CSV import: out-of-range, unparseable or duplicate
readings are reported in ``rejected`` by position, the rest are stored, and sending the same
batch again stores nothing twice.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from flask import Blueprint, request

from twinlib.api.auth import require_token
from twinlib.api.errors import ApiError
from twinlib.api.jsonio import json_response, read_json_body
from twinlib.api.params import MAX_MS, MIN_MS
from twinlib.api.stores import write_with_retry
from twinlib.config import SENSORS
from twinlib.ingest import ingest_frame
from twinlib.timeutil import format_ts

__all__ = ["bp", "MAX_BATCH", "batch_to_frame"]

bp = Blueprint("ingest", __name__)

#: Readings per request; larger loads belong in several requests or a CSV import.
MAX_BATCH = 10_000
_NUMBERS = (*SENSORS, "load", "speed", "ambient")
_KNOWN = frozenset({"asset_id", "timestamp", "label", *_NUMBERS})
# Integer timestamps outside the years the API accepts are passed on as their digits, which the
# validator rejects as unparseable (with the value in the reason).
_MIN_MS, _MAX_MS = MIN_MS, MAX_MS


def _number(value, where: str) -> float:
    if value is None:
        return math.nan
    # bool is an int in Python but not a number in JSON terms.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"{where} must be a number or null", parameter=where)
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float: let the validator call it non-finite
        return math.inf


def _timestamp(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ApiError(400, f"{where} must be a text time or integer epoch milliseconds",
                       parameter=where)
    if isinstance(value, int):
        return format_ts(value) if _MIN_MS <= value <= _MAX_MS else str(value)
    return value


def batch_to_frame(items: list) -> tuple[pd.DataFrame, list[str]]:
    """Check the JSON shape of a batch and turn it into a frame for ``ingest_frame``.

    Returns the frame (row *i* = ``items[i]``) and notes about ignored fields. Raises
    :class:`ApiError` (400) naming the first field with a wrong JSON type.
    """
    n = len(items)
    assets: list[str] = []
    stamps: list[str] = []
    labels: list = []
    nums = {k: np.full(n, np.nan) for k in _NUMBERS}
    present = dict.fromkeys(_NUMBERS, False)
    unknown: set[str] = set()
    for i, item in enumerate(items):
        where = f"readings[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where} must be an object", parameter=where)
        asset = item.get("asset_id")
        if not isinstance(asset, str) or not asset:
            raise ApiError(400, f"{where}.asset_id must be a non-empty string",
                           parameter=f"{where}.asset_id")
        if "timestamp" not in item:
            raise ApiError(400, f"{where}.timestamp is required", parameter=f"{where}.timestamp")
        assets.append(asset)
        stamps.append(_timestamp(item["timestamp"], f"{where}.timestamp"))
        label = item.get("label")
        if label is not None and not isinstance(label, str):
            raise ApiError(400, f"{where}.label must be text or null", parameter=f"{where}.label")
        labels.append(label)
        for k in _NUMBERS:
            if k in item:
                present[k] = True
                nums[k][i] = _number(item[k], f"{where}.{k}")
        unknown.update(k for k in item if k not in _KNOWN)
    frame = pd.DataFrame({"asset_id": pd.Series(assets, dtype=object),
                          "timestamp": pd.Series(stamps, dtype=object)})
    for k in _NUMBERS:
        # The sensors are always there (absent = missing, which the validator reports);
        # optional operating-state columns only when some reading carries them.
        if k in SENSORS or present[k]:
            frame[k] = nums[k]
    if any(label is not None for label in labels):
        frame["label"] = pd.Series(labels, dtype=object)
    notes = [f"ignored unknown field(s): {', '.join(sorted(unknown))}"] if unknown else []
    return frame, notes


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
