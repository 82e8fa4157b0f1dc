"""The OpenAPI pieces the views' annotations refer to: component schemas, shared parameters
and error answers. :mod:`twinlib.api.openapi` assembles the document from the routes."""
from __future__ import annotations

from twinlib.api.paging import CURSOR_PATTERN
from twinlib.api.params import BUCKETS, TEXT_PATTERN, TIME_PATTERN

_TIME_DESC = ("UTC time: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS[.ffffff]]`, the same with `T` and "
              "an optional offset `+HH:MM` or `Z`, or integer epoch milliseconds; years "
              "1900–9999. Inclusive.")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict:
    return _json(_ref("Error"), description)


_NUM = {"type": "number", "nullable": True}
_TS = {"type": "string", "format": "date-time", "example": "2026-02-10T14:30:00.000Z",
       "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$",
       "description": "ISO 8601 UTC with milliseconds, always the same width"}
#: ``GET /data``'s times: the seed's form in every row, or ISO with ``format=iso``.
_DATA_TS = {"type": "string", "example": "2026-02-10 14:30:00",
            "pattern": (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2}|"
                        r"T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)$"),
            "description": ("UTC. `YYYY-MM-DD HH:MM:SS` in every row (milliseconds dropped), or "
                            "ISO 8601 `YYYY-MM-DDTHH:MM:SS.fffZ` with `format=iso`")}
_TS_NULL = {**_TS, "nullable": True}

_ERRORS = {
    "400": _err("A parameter is invalid; `parameter` names it."),
    "503": _err("The database is missing, unreadable, read-only for writes, or busy (then with "
                 "`Retry-After`); nothing is created."),
}
_ASSET_404 = {"404": _err("Unknown asset.")}
_AUTH = {
    "401": _err("Missing or wrong bearer token."),
    "403": _err("Writes are disabled: no API token is configured."),
    "429": _err("Too many wrong tokens from this client: retry after `Retry-After` seconds."),
}


def _q(name: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


_TIME_SCHEMA = {"type": "string", "minLength": 1, "pattern": TIME_PATTERN}
_SINCE = _q("since", _TIME_SCHEMA, "Earliest reading time. " + _TIME_DESC)
_UNTIL = _q("until", _TIME_SCHEMA, "Latest reading time; not before `since`. " + _TIME_DESC)
_ASSET_Q = _q("asset", {"type": "string", "minLength": 1, "maxLength": 200,
                        "pattern": TEXT_PATTERN},
              "Only this asset (404 when unknown).")
_ASSET_PATH = {"name": "asset_id", "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                          "pattern": "^[^/]+$"}}
_ALARM_PATH = {"name": "alarm_id", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 0}}

_SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["status", "error", "message"],
        "properties": {
            "status": {"type": "integer"},
            "error": {"type": "string"},
            "message": {"type": "string"},
            "parameter": {"type": "string", "description": "The parameter at fault."},
            "reason": {"type": "string", "enum": ["missing", "unreadable", "busy", "readonly"],
                       "description": ("Why the database is unavailable (503 only): `busy` "
                                       "comes with `Retry-After`.")},
        },
    },
    "Reading": {
        "type": "object",
        "description": ("One reading in the original `GET /data` shape: for a pump `temperature`, "
                        "`vibration`, `pressure`; for another kind its measured signals by name "
                        "(`GET /kinds`)."),
        "required": ["id", "timestamp", "asset_id"],
        "additionalProperties": _NUM,
        "properties": {
            "id": {"type": "integer"},
            "timestamp": _DATA_TS,
            "temperature": {**_NUM, "description": "°C"},
            "vibration": {**_NUM, "description": "g RMS"},
            "pressure": {**_NUM, "description": "bar"},
            "asset_id": {"type": "string"},
        },
    },
    "AssetReading": {
        "type": "object",
        "description": "A reading: id, timestamp, the asset kind's measured signals by name, label.",
        "required": ["id", "timestamp", "label"],
        "additionalProperties": _NUM,
        "properties": {
            "id": {"type": "integer"},
            "timestamp": _TS,
            "temperature": _NUM,
            "vibration": _NUM,
            "pressure": _NUM,
            "label": {"type": "string", "nullable": True,
                      "description": "`healthy`, a fault kind, or null when unknown."},
        },
    },
    "AssetStatus": {
        "type": "object",
        "description": ("The alarm engine's view of the asset now (`twinlib.detect.asset_status`): "
                        "the worst of its active alarms, `stale` when no reading arrived within "
                        "the stale limit."),
        "required": ["status", "messages"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": ["normal", "warning", "stale", "critical"]},
            "messages": {"type": "array", "items": {"type": "string"},
                         "description": "Active alarms' messages, critical first."},
        },
    },
    "Signal": {
        "type": "object",
        "required": ["name", "unit", "role"],
        "properties": {
            "name": {"type": "string"},
            "unit": {"type": "string"},
            "role": {"type": "string", "enum": ["measured", "state"]},
            "limits_in_force": {
                "type": "object",
                "description": "`GET /assets/{asset_id}` only: the alarm limits the alarm "
                               "engine applies to this signal of this asset now, per side "
                               "(null: no level on that side; state signals have none).",
                "required": ["high", "low"],
                "additionalProperties": False,
                "properties": {"high": {**_ref("LimitInForce"), "nullable": True},
                               "low": {**_ref("LimitInForce"), "nullable": True}},
            },
        },
    },
    "LimitInForce": {
        "type": "object",
        "description": "One side of a signal's alarm limit as the rules apply it "
                       "(`twinlib.detect.limits_in_force`).",
        "required": ["source", "status"],
        "additionalProperties": False,
        "properties": {
            "source": {"type": "string", "enum": ["kind", "override", "learned"],
                       "description": "The kind's level, the settings file's `[thresholds]` "
                                      "override, or learned from the asset's first hours "
                                      "(`[rules] learn_limits_hours`)."},
            "status": {"type": "string", "enum": ["in force", "learning", "not learned"],
                       "description": "`learning`: the training hours are not over (no level "
                                      "yet); `not learned`: too few (or no varying) readings "
                                      "in them, this side raises nothing."},
            "warning": {"type": "number", "description": "Warning level (absent until learned)."},
            "critical": {"type": "number", "description": "Critical level, if any."},
            "deadband": {"type": "number"},
            "unit": {"type": "string"},
            "setting": {"type": "string",
                        "description": "Override: the settings section that sets it, e.g. "
                                       "`[assets.\"pump-01\".thresholds]`."},
            "learn_hours": {"type": "number",
                            "description": "Learned: hours of the asset's first readings."},
            "learned_from": {**_TS, "description": "Learned: the training window's start."},
            "learned_to": {**_TS, "description": "Learned: the training window's end."},
            "median": {"type": "number", "description": "Learned: the signal's median."},
            "sd": {"type": "number",
                   "description": "Learned: robust σ (1.4826 × MAD) of the signal."},
            "k": {"type": "number", "description": "Learned: warning at median ± k·sd, "
                                                   "critical at ± 1.5·k·sd."},
        },
    },
    "Kind": {
        "type": "object",
        "description": "An asset kind: its signals, units, roles, valid ranges and alarm limits.",
        "required": ["name", "signals"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "physics": {"type": "string", "nullable": True},
            "stale_s": _NUM,
            "source": {"type": "string"},
            "signals": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Asset": {
        "type": "object",
        "required": ["asset_id", "kind", "location", "params", "signals", "status", "latest"],
        "additionalProperties": False,
        "properties": {
            "asset_id": {"type": "string"},
            "kind": {"type": "string", "nullable": True},
            "location": {"type": "string", "nullable": True,
                         "description": "Location path, e.g. `plant-1/line-2`."},
            "params": {"type": "object"},
            "signals": {"type": "array", "items": _ref("Signal")},
            "status": _ref("AssetStatus"),
            "latest": {**_ref("AssetReading"), "nullable": True},
        },
    },
    "SensorStats": {
        "type": "object",
        "required": ["min", "mean", "max"],
        "properties": {"min": _NUM, "mean": _NUM, "max": _NUM},
    },
    "Bucket": {
        "type": "object",
        "description": "One time bucket: min/mean/max of each measured signal, by name.",
        "required": ["timestamp", "n"],
        "additionalProperties": _ref("SensorStats"),
        "properties": {
            "timestamp": {**_TS, "description": "Start of the bucket (UTC)."},
            "n": {"type": "integer", "minimum": 1},
            "temperature": _ref("SensorStats"),
            "vibration": _ref("SensorStats"),
            "pressure": _ref("SensorStats"),
        },
    },
    "History": {
        "type": "object",
        "required": ["asset_id", "bucket", "since", "until"],
        "properties": {
            "asset_id": {"type": "string"},
            "bucket": {"type": "string", "enum": list(BUCKETS), "nullable": True},
            "since": _TS_NULL,
            "until": _TS_NULL,
            "truncated": {"type": "boolean",
                          "description": "Raw history only: more readings matched than `limit`."},
            "readings": {"type": "array", "items": _ref("AssetReading"),
                         "description": "Raw history only, oldest first."},
            "buckets": {"type": "array", "items": _ref("Bucket"),
                        "description": "Downsampled history only, oldest first."},
            "next": {"type": "string", "nullable": True,
                     "description": ("The next (older) page's relative URL, also in the `Link` "
                                     "header; null on the last page.")},
        },
    },
    "Forecast": {
        "type": "object",
        "required": ["sensor", "threshold", "current", "slope_per_hour", "eta", "eta_low",
                     "eta_high", "hours_to_threshold"],
        "properties": {
            "sensor": {"type": "string", "enum": ["temperature", "vibration", "pressure"]},
            "threshold": _NUM,
            "current": _NUM,
            "slope_per_hour": _NUM,
            "eta": {**_TS_NULL, "description": "Where the fitted straight trend crosses the threshold."},
            "eta_low": _TS_NULL,
            "eta_high": {**_TS_NULL, "description": "Null when the range reaches past 48 h."},
            "hours_to_threshold": _NUM,
            "eta_expected": {**_TS_NULL, "description": "Calibrated crossing time: where a curve "
                             "through the window crosses the threshold (degradations usually "
                             "speed up near the end), kept inside the range."},
            "expected_hours_to_threshold": _NUM,
            "curve_hours_to_threshold": {**_NUM, "description": "Hours until the curve the range "
                                         "is built on crosses the threshold (the line's crossing "
                                         "when the curve never does)."},
            "coverage": {**_NUM, "description": "How often [eta_low, eta_high] holds the true "
                         "crossing time (nominal, e.g. 0.8)."},
        },
    },
    "Forecasts": {
        "type": "object",
        "required": ["asset_id", "as_of", "forecasts"],
        "properties": {
            "asset_id": {"type": "string"},
            "as_of": {**_TS_NULL, "description": "The asset's newest reading: the forecast's now."},
            "forecasts": {"type": "array", "items": _ref("Forecast"),
                          "description": "Empty when nothing is trending toward a threshold."},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "database", "max_id", "newest_reading", "age_s", "checked_at"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "database": {"type": "string", "enum": ["reachable"]},
            "max_id": {"type": "integer", "description": "Highest reading id (0 when empty)."},
            "newest_reading": _TS_NULL,
            "age_s": {"type": "number", "nullable": True,
                      "description": "Seconds since the newest reading's timestamp."},
            "checked_at": _TS,
        },
    },
    "ReadingIn": {
        "type": "object",
        "description": ("One reading to store. Unknown fields are ignored and named in `notes`. "
                        "Values are checked like a CSV import (physical limits, duplicates); a "
                        "reading that fails is reported in `rejected`, the others are stored."),
        "required": ["asset_id", "timestamp"],
        "properties": {
            "asset_id": {"type": "string", "minLength": 1,
                         "description": ("Letters, digits and `_ . : -`, at most 64 characters; "
                                         "other ids are rejected readings.")},
            "timestamp": {"oneOf": [{"type": "string"}, {"type": "number"}],
                          "description": ("UTC text time, or epoch milliseconds (a number below "
                                          "1e11 is epoch seconds); the same rule as MQTT.")},
            "temperature": _NUM,
            "vibration": _NUM,
            "pressure": _NUM,
            "label": {"type": "string", "nullable": True},
            "load": _NUM,
            "speed": _NUM,
            "ambient": _NUM,
        },
    },
    "Batch": {
        "type": "object",
        "required": ["readings"],
        "properties": {
            "readings": {"type": "array", "maxItems": 10000, "items": _ref("ReadingIn")},
        },
    },
    "IngestReport": {
        "type": "object",
        "required": ["received", "inserted", "duplicates", "rejected", "notes"],
        "properties": {
            "received": {"type": "integer"},
            "inserted": {"type": "integer", "description": "Readings newly stored."},
            "duplicates": {"type": "integer",
                           "description": "Readings already stored (same asset and time): kept once."},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "reason"],
                    "properties": {
                        "index": {"type": "integer", "description": "Position in `readings`."},
                        "reason": {"type": "string"},
                        "raw": {"description": "The reading as sent."},
                    },
                },
            },
            "notes": {"type": "array", "items": {"type": "string"}},
        },
    },
}



#: Public names for the views' annotations.
TS = _TS
TS_NULL = _TS_NULL
SCHEMAS = _SCHEMAS
ERRORS = _ERRORS
ASSET_404 = _ASSET_404
AUTH = _AUTH
SINCE = _SINCE
UNTIL = _UNTIL
ASSET_Q = _ASSET_Q
ALARM_PATH = _ALARM_PATH
ASSET_PATH = _ASSET_PATH
ref, json_body, err, query = _ref, _json, _err, _q
CURSOR = _q("cursor", {"type": "string", "pattern": CURSOR_PATTERN},
            "Page token from a previous answer's `next` link (opaque; follow `next` as given).")
