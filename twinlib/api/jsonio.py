"""JSON bodies: orjson responses and the wire shapes of readings, alarms and buckets.

Times leave the API as ISO 8601 UTC with milliseconds, one width in every row
(``2026-02-10T14:30:00.000Z``, :func:`twinlib.timeutil.format_iso`), except ``GET /data``, which
keeps the seed's ``YYYY-MM-DD HH:MM:SS`` (UTC, milliseconds dropped) in every row, or ISO on
request (``?format=iso``). Missing sensor values and NaN become ``null``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import orjson
from flask import Response, request

from twinlib.api.errors import ApiError
from twinlib.kinds import BUILTIN_KINDS, Kind
from twinlib.store import Reading
from twinlib.text import plain_text
from twinlib.timeutil import format_iso, format_seconds

__all__ = [
    "json_response",
    "read_json_body",
    "reading_to_dict",
    "readings_to_list",
    "alert_to_dict",
    "clean_number",
    "format_optional_ts",
    "format_ts_cached",
    "plain_text",
]

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_response(obj, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response serialised with orjson (NaN and numpy scalars handled)."""
    resp = Response(orjson.dumps(obj, option=_OPTS), status=status, mimetype="application/json")
    if headers:
        resp.headers.update(headers)
    return resp


def read_json_body():
    """The request body parsed as strict JSON (400 naming ``body`` when it is not).

    orjson rather than the stdlib: it refuses ``NaN``/``Infinity`` literals and numbers that
    overflow a double, and stops at 1024 levels of nesting instead of raising RecursionError.
    """
    try:
        return orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}", parameter="body") from None




def clean_number(value):
    """A float for JSON: ``None`` for missing or non-finite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_optional_ts(ms):
    """The REST time form (:func:`~twinlib.timeutil.format_iso`); ``None`` passes through."""
    return None if ms is None else format_iso(ms)


_SECONDS: dict[int, str] = {}
_SECONDS_MAX = 4096


def format_ts_cached(ms: int) -> str:
    """:func:`twinlib.timeutil.format_seconds` with the per-second text cached.

    ``GET /data`` formats the same few seconds over and over (the newest readings); strftime is
    most of the formatting cost. Same output as ``format_seconds`` for every input: the seed's
    one form ``YYYY-MM-DD HH:MM:SS`` whatever precision is stored, so a client parsing the
    whole column with one format (``pd.to_datetime``) never meets a second form.
    """
    sec = int(ms) // 1000
    text = _SECONDS.get(sec)
    if text is None:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        text = _SECONDS[sec] = format_seconds(sec * 1000)
    return text


def _measured(kind: str, kinds: Mapping[str, Kind] | None, values: dict) -> tuple[str, ...]:
    k = (kinds or BUILTIN_KINDS).get(kind)
    return k.measured if k is not None else tuple(values)


def reading_to_dict(r: Reading, kinds: Mapping[str, Kind] | None = None, *,
                    iso: bool = False) -> dict:
    """The original ``GET /data`` row: id, timestamp, the asset's measured signals (for a pump:
    temperature, vibration, pressure), plus asset_id. ``iso``: the REST time form."""
    out = {"id": r.id, "timestamp": format_iso(r.ts) if iso else format_ts_cached(r.ts)}
    for name in _measured(r.kind, kinds, r.values):
        out[name] = r.values.get(name)
    out["asset_id"] = r.asset_id
    return out


def readings_to_list(rows, kinds: Mapping[str, Kind] | None = None, *,
                     iso: bool = False) -> list[dict]:
    """``reading_to_dict`` over a list of readings (the hot path of ``GET /data``)."""
    out = []
    fmt = format_iso if iso else format_ts_cached
    for r in rows:
        row = {"id": r.id, "timestamp": fmt(r.ts)}
        values = r.values
        for name in _measured(r.kind, kinds, values):
            row[name] = values.get(name)
        row["asset_id"] = r.asset_id
        out.append(row)
    return out


_ALERT_TIMES = ("started_at", "last_seen", "ended_at", "acked_at")


def alert_to_dict(alert: dict) -> dict:
    """An alarm on the wire: :func:`twinlib.alarms.alarm_to_json` (one shape for CLI and API)."""
    from twinlib.alarms import alarm_to_json

    return alarm_to_json(alert)
