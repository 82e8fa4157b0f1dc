"""Readings sent as JSON — ``POST /readings`` and MQTT payloads — decoded once, the same way.

A reading is a JSON object::

    {"asset_id": "pump-07", "timestamp": "2026-02-10 14:30:00", "temperature": 71.2,
     "vibration": 0.31, "pressure": 48.0, "label": null, "load": 0.8}

- ``asset_id``: a non-empty string (MQTT: from the topic; a payload's own id must agree);
- the time, given once, as ``timestamp`` (or ``time`` or ``ts``): text (ISO 8601, naive =
  UTC) or a number of epoch **milliseconds**; a number below 1e11 is taken as epoch
  **seconds** (1e11 ms is in 1973, 1e11 s in the year 5138, so the two never meet inside the
  plausible window), fractions allowed. A reading without a time is refused unless the caller
  stamps it (``stamp_ms``: MQTT QoS 0, where no redelivery can double it);
- signals and operating state: numbers or ``null``; ``label``: text or ``null``;
- other fields are ignored and named (``unknown``).

This module checks the JSON *shape* (types); the *values* (ranges, real timestamps,
duplicates) are checked by :func:`twinlib.ingest.validate_frame` like any other source.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..config import SENSORS
from ..timeutil import format_ts
from .validate import STATE_COLUMNS

__all__ = ["Problem", "Decoded", "decode_readings", "parse_json", "readings_of", "rows_to_frame",
           "time_field", "SECONDS_BELOW", "MAX_PAYLOAD_BYTES", "TIME_FIELDS"]

#: A numeric time below this is epoch seconds, at or above it epoch milliseconds.
SECONDS_BELOW = 1e11
#: Largest JSON document accepted from a message (an HTTP body has its own limit).
MAX_PAYLOAD_BYTES = 1024 * 1024
#: Where a reading's time may be (one of them).
TIME_FIELDS = ("timestamp", "time", "ts")
# Numbers outside these years cannot be formatted; they go on as digits and validation refuses
# them as unparseable.
_MIN_MS = -2_208_988_800_000        # 1900-01-01
_MAX_MS = 253_402_300_799_999       # 9999-12-31 23:59:59.999


class Problem(NamedTuple):
    """Why reading ``index`` cannot even be read: its ``field`` (None: the reading) and why."""

    index: int
    field: str | None
    message: str

    def where(self, prefix: str = "readings") -> str:
        """``readings[3].timestamp``: the JSON path of the problem."""
        base = f"{prefix}[{self.index}]"
        return f"{base}.{self.field}" if self.field else base

    def text(self, prefix: str = "readings") -> str:
        return f"{self.where(prefix)} {self.message}"


@dataclass
class Decoded:
    """Rows (twinlib columns) of the readings that could be read, and what could not."""

    rows: list[dict] = field(default_factory=list)
    index: list[int] = field(default_factory=list)   # position in the input of each row
    problems: list[Problem] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(payload: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[Any, str | None]:
    """(document, None) or (None, why not): never raises, whatever the bytes."""
    size = len(payload)
    if size > max_bytes:
        return None, f"payload of {size:,} bytes is larger than the {max_bytes:,} accepted"
    try:
        return json.loads(payload, parse_constant=_refuse_constant), None
    except RecursionError:
        return None, "payload is not JSON we accept (nested too deeply)"
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        return None, f"payload is not JSON ({_short(str(exc), 120)})"


def readings_of(doc: Any) -> list:
    """The readings of a document: a list, ``{"readings": [...]}``, or one reading."""
    if isinstance(doc, dict) and isinstance(doc.get("readings"), list):
        return doc["readings"]
    if isinstance(doc, list):
        return doc
    return [doc]


def time_field(value: Any) -> str | None:
    """A JSON time as text for validation, or None when its JSON type is wrong."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        ms = value * 1000 if abs(value) < SECONDS_BELOW else value
        ms = int(round(ms)) if isinstance(ms, float) else int(ms)
    except (OverflowError, ValueError):
        return str(value)
    return format_ts(ms) if _MIN_MS <= ms <= _MAX_MS else str(value)


def decode_readings(items: list, *, asset: str | None = None, stamp_ms: int | None = None,
                    signals: tuple[str, ...] = SENSORS,
                    state: tuple[str, ...] = STATE_COLUMNS) -> Decoded:
    """Check the JSON shape of each reading and turn the good ones into rows.

    ``asset``: the asset the channel names (an MQTT topic); ``stamp_ms``: the time given to a
    reading without one (None: such a reading is a problem). ``signals`` and ``state`` are
    the number fields. A reading has at most one problem: the first found, in the order
    reading → asset_id → time → label → numbers.
    """
    numbers = tuple(dict.fromkeys((*signals, *state)))
    known = {"asset_id", "label", "kind", *TIME_FIELDS, *numbers}
    out = Decoded()
    for i, item in enumerate(items):
        problem = None
        if not isinstance(item, dict):
            out.problems.append(Problem(i, None, "must be an object"))
            continue
        given = item.get("asset_id")
        if asset is not None:
            if given is not None and given != asset:
                problem = Problem(i, "asset_id", f"{_short(repr(given))} does not match the "
                                                 f"channel's asset {asset!r}")
            owner = asset
        elif not isinstance(given, str) or not given:
            problem = Problem(i, "asset_id", "must be a non-empty string")
        else:
            owner = given
        if problem is None:
            present = [f for f in TIME_FIELDS if f in item]
            if len(present) > 1:
                problem = Problem(i, present[0], f"give the time once ({', '.join(present)} "
                                                 f"are all present)")
            elif not present:
                if stamp_ms is None:
                    problem = Problem(i, "timestamp", "is required")
                else:
                    when = format_ts(stamp_ms)
            else:
                when = time_field(item[present[0]])
                if when is None:
                    problem = Problem(i, present[0], "must be a text time or a number (epoch "
                                                     "milliseconds; below 1e11: seconds)")
        label = item.get("label")
        if problem is None and label is not None and not isinstance(label, str):
            problem = Problem(i, "label", "must be text or null")
        row = None
        if problem is None:
            row = {"asset_id": owner, "timestamp": when, "label": label}
            for k in numbers:
                if k not in item:
                    continue
                v = item[k]
                if v is None:
                    row[k] = math.nan
                elif isinstance(v, bool) or not isinstance(v, (int, float)):
                    problem = Problem(i, k, "must be a number or null")
                    break
                else:
                    try:
                        row[k] = float(v)
                    except OverflowError:  # an integer too large for a float: not finite
                        row[k] = math.inf
        if problem is not None:
            out.problems.append(problem)
            continue
        out.rows.append(row)
        out.index.append(i)
        out.unknown.update(k for k in item if k not in known)
    return out


def rows_to_frame(rows: list[dict], *, signals: tuple[str, ...] = SENSORS,
                  state: tuple[str, ...] = STATE_COLUMNS) -> pd.DataFrame:
    """Decoded rows as a frame for validation: every signal a column (absent = missing),
    state columns and ``label`` only when some reading carries them."""
    n = len(rows)
    frame = pd.DataFrame({"asset_id": pd.Series([r["asset_id"] for r in rows], dtype=object),
                          "timestamp": pd.Series([r["timestamp"] for r in rows], dtype=object)})
    for k in dict.fromkeys((*signals, *state)):
        if k in signals or any(k in r for r in rows):
            frame[k] = np.fromiter((r.get(k, math.nan) for r in rows), dtype=float, count=n)
    if any(r.get("label") is not None for r in rows):
        frame["label"] = pd.Series([r.get("label") for r in rows], dtype=object)
    return frame


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "…"
