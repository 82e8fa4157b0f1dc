"""Query-parameter parsing: each parser returns a clean value or raises a 400 naming the parameter.

Times are accepted as ``YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]`` (UTC), the same with ``T`` and an
optional offset (``+HH:MM``) or ``Z``, or integer epoch milliseconds — exactly the strings
:data:`TIME_PATTERN` matches (the OpenAPI document publishes the same pattern), then checked as
real times in years 1900 … 9999. :meth:`datetime.fromisoformat` alone would also take week dates,
``20260210``, ``2026-02-10T14`` or surrounding spaces; none of those is documented, so none is
accepted. No pandas: strict (no ``"now"``), and microseconds in a request handler.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from flask import request

from twinlib.api.errors import ApiError

__all__ = [
    "BUCKETS",
    "MAX_MS",
    "MIN_MS",
    "TIME_PATTERN",
    "TEXT_PATTERN",
    "get_int",
    "get_time",
    "get_text",
    "get_choice",
    "get_bool",
    "get_bucket",
    "get_range",
    "parse_time",
]

#: Downsampling buckets the API offers, in seconds.
BUCKETS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Years 1900 … 9999: no sensor reading is older, and every time in range formats as
#: ``YYYY-MM-DD HH:MM:SS`` (four-digit year) and fits SQLite's 64-bit integers.
MIN_MS = int((datetime(1900, 1, 1, tzinfo=timezone.utc) - _EPOCH).total_seconds() * 1000)
MAX_MS = int((datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc) - _EPOCH)
             .total_seconds() * 1000)
_INT_RE = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: "５" is not a number here
#: Every time text a parameter may hold (also the OpenAPI ``pattern`` of since/until).
TIME_PATTERN = (r"^(-?[0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}"
                r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|z|[+-][0-9]{2}:[0-9]{2})?)?)$")
_TIME_RE = re.compile(TIME_PATTERN)
_EPOCH_RE = re.compile(r"-?[0-9]{1,15}")
#: Free text parameters (asset ids): anything but NUL (also the OpenAPI ``pattern``).
TEXT_PATTERN = r"^[^\u0000]*$"
_TIME_HELP = ("use YYYY-MM-DD[ HH:MM[:SS[.fff]]] (UTC), the same with T and an offset or Z, "
              "or epoch milliseconds")


def parse_time(text: str, name: str) -> int:
    """UTC epoch milliseconds from a query-string time (``ApiError`` 400 naming ``name``)."""
    raw = text
    # fullmatch: "$" alone would let a trailing newline through.
    if _TIME_RE.fullmatch(raw) is None:
        raise ApiError(400, f"{name} is not a time: {text!r} ({_TIME_HELP})", parameter=name)
    if _EPOCH_RE.fullmatch(raw):
        value = int(raw)
        if not MIN_MS <= value <= MAX_MS:
            raise ApiError(400, f"{name} is out of range: {text!r}", parameter=name)
        return value
    try:
        if raw.endswith(("Z", "z")):
            raw = raw[:-1] + "+00:00"
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name} is not a time: {text!r} ({_TIME_HELP})", parameter=name) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        delta = dt - _EPOCH
    except OverflowError:
        raise ApiError(400, f"{name} is out of range: {text!r}", parameter=name) from None
    # Whole-millisecond arithmetic: float seconds would round some times by 1 ms.
    ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if not MIN_MS <= ms <= MAX_MS:
        raise ApiError(400, f"{name} is out of range: {text!r}", parameter=name)
    return ms


def _raw(name: str) -> str | None:
    return request.args.get(name)


def get_int(name: str, default: int | None, lo: int, hi: int) -> int | None:
    """An integer parameter in ``lo … hi`` (inclusive)."""
    raw = _raw(name)
    if raw is None:
        return default
    text = raw.strip()
    if not _INT_RE.fullmatch(text):
        raise ApiError(400, f"{name} must be an integer between {lo} and {hi}, got {raw!r}",
                       parameter=name)
    value = int(text)
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}, got {value}", parameter=name)
    return value


def get_time(name: str) -> int | None:
    """A time parameter as epoch ms, or ``None`` when absent."""
    raw = _raw(name)
    if raw is None:
        return None
    return parse_time(raw, name)


def get_text(name: str, max_len: int = 200) -> str | None:
    """A non-empty text parameter (``None`` when absent)."""
    raw = _raw(name)
    if raw is None:
        return None
    if not raw or len(raw) > max_len or "\x00" in raw:
        raise ApiError(400, f"{name} must be 1 to {max_len} characters", parameter=name)
    return raw


def get_choice(name: str, choices, default: str | None = None) -> str | None:
    """One of a fixed set of words."""
    raw = _raw(name)
    if raw is None:
        return default
    if raw not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(choices)}, got {raw!r}",
                       parameter=name)
    return raw


def get_bool(name: str) -> bool | None:
    """``true``/``false`` (also ``1``/``0``); ``None`` when absent."""
    raw = _raw(name)
    if raw is None:
        return None
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.strip().lower())
    if value is None:
        raise ApiError(400, f"{name} must be true or false, got {raw!r}", parameter=name)
    return value


def get_bucket(name: str = "bucket") -> int | None:
    """A downsampling bucket (``1m``, ``5m``, ``1h``) in seconds, or ``None`` for raw readings."""
    raw = get_choice(name, tuple(BUCKETS))
    return None if raw is None else BUCKETS[raw]


def get_range(since_name: str = "since", until_name: str = "until") -> tuple[int | None, int | None]:
    """``since``/``until`` as epoch ms (each may be absent); ``until`` before ``since`` is a 400."""
    since = get_time(since_name)
    until = get_time(until_name)
    if since is not None and until is not None and until < since:
        raise ApiError(400, f"{until_name} must not be before {since_name}", parameter=until_name)
    return since, until
