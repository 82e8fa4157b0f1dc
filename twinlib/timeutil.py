"""Timestamps: integer UTC epoch milliseconds inside twinlib, ``YYYY-MM-DD HH:MM:SS`` outside."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

__all__ = ["to_ms", "to_ms_array", "format_ts", "format_ts_array", "format_iso", "format_iso_array",
           "format_seconds", "now_ms", "parse_duration"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_ms() -> int:
    """The current time as UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def to_ms(value) -> int:
    """Convert a timestamp (text, datetime, pandas/numpy time or int ms) to UTC epoch ms.

    Naive times are taken as UTC. Raises ``ValueError`` with the offending value otherwise.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise ValueError(f"not a timestamp: {value!r}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty timestamp")
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ValueError(f"unparseable timestamp {value!r}") from None
    else:
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ValueError(f"unparseable timestamp {value!r}") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"unparseable timestamp {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.to_datetime64().astype("datetime64[ms]").astype(np.int64))


def to_ms_array(values) -> np.ndarray:
    """Vectorised :func:`to_ms` for a datetime64 Series/array (naive = UTC) → int64 ms."""
    s = pd.Series(values)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.to_numpy(dtype=np.int64)
    return s.to_numpy(dtype="datetime64[ms]").astype(np.int64)


def format_ts(ms: int) -> str:
    """``2026-02-10 14:30:00`` (``.123`` appended only when the milliseconds are not zero)."""
    ms = int(ms)
    sec, frac = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
    return f"{text}.{frac:03d}" if frac else text


def format_ts_array(ms: np.ndarray) -> np.ndarray:
    """Vectorised :func:`format_ts` → a new (writable) object array of strings."""
    ms = np.asarray(ms, dtype=np.int64)
    # pandas 3 (copy-on-write) may hand out a read-only view: take our own copy to write into
    whole = np.array(pd.to_datetime(ms // 1000 * 1000, unit="ms").strftime("%Y-%m-%d %H:%M:%S"),
                     dtype=object, copy=True)
    frac = ms % 1000
    idx = np.flatnonzero(frac)
    if len(idx):
        whole[idx] = [f"{w}.{f:03d}" for w, f in zip(whole[idx], frac[idx])]
    return whole


def format_seconds(ms: int) -> str:
    """``2026-02-10 14:30:00`` always (milliseconds dropped): the seed's one ``/data`` form."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(ms) // 1000))


def format_iso(ms: int | None) -> str | None:
    """ISO 8601 UTC with milliseconds, always the same width: ``2026-02-10T14:30:00.000Z``.

    The REST form (every endpoint except ``/data``): a zone clients cannot misread, and one
    precision in every row so ``pd.to_datetime`` parses a whole response with one format.
    ``None`` stays ``None`` (an alarm that has not ended).
    """
    if ms is None:
        return None
    ms = int(ms)
    sec, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:03d}Z"


def format_iso_array(ms: np.ndarray) -> np.ndarray:
    """Vectorised :func:`format_iso` → an object array of strings."""
    ms = np.asarray(ms, dtype=np.int64)
    return np.array(pd.to_datetime(ms, unit="ms").strftime("%Y-%m-%dT%H:%M:%S.%fZ").str[:23] + "Z",
                    dtype=object) if len(ms) else np.array([], dtype=object)


_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``"1s"``, ``"500ms"``, ``"5min"``, ``"1h"`` or a plain number of seconds."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        raw = str(text).strip().lower()
        num = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = raw[len(num):] or "s"
        if unit not in _UNITS or not num:
            raise ValueError(f"not a duration: {text!r} (use e.g. 1s, 500ms, 5min, 1h)")
        try:
            value = float(num) * _UNITS[unit]
        except ValueError:
            raise ValueError(f"not a duration: {text!r} (use e.g. 1s, 500ms, 5min, 1h)") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return value
