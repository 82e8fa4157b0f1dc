"""Times as the dashboard shows them: in one chosen zone, and from the data's own age.

The store keeps UTC milliseconds. :class:`ZoneClock` turns them into the words and chart
coordinates of one IANA zone (``[dashboard] timezone`` / ``TWIN_TIMEZONE``, default UTC):
``text(ms)`` for the table and the badges, ``shift(ms_array)`` for the charts (bqplot formats
date axes in UTC, so a point is drawn at its UTC time plus the zone's offset at that instant —
across a daylight-saving change the clock on the axis jumps, as a wall clock does), and
``parse(text)`` for the custom range's "from" and "to" (a local wall time, read in the zone).

:func:`data_age_s` and :func:`stale_limit_s` decide "stale" from the newest reading's timestamp
against now (never from when the page was opened), with a limit that follows the asset's cadence.
"""
from __future__ import annotations

import datetime as _dt
from zoneinfo import ZoneInfo

import numpy as np

from twinlib.dashboard import theme

__all__ = ["ZoneClock", "data_age_s", "stale_limit_s", "median_cadence_ms", "with_gaps",
           "describe_age"]


class ZoneClock:
    """UTC milliseconds in one zone: text, chart coordinates, parsing of local wall times."""

    def __init__(self, zone: str = "UTC"):
        self.name = str(zone or "UTC")
        self.zone = ZoneInfo(self.name)

    def __repr__(self) -> str:
        return f"ZoneClock({self.name!r})"

    def _dt(self, ms: int) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(int(ms) / 1000.0, tz=_dt.timezone.utc).astimezone(self.zone)

    def offset_ms(self, ms: int) -> int:
        """The zone's offset from UTC at the instant ``ms`` (ms; Berlin in winter: 3,600,000)."""
        return int(self._dt(ms).utcoffset().total_seconds() * 1000)

    @property
    def label(self) -> str:
        """What the page calls the zone: ``UTC`` or ``Europe/Berlin``."""
        return self.name

    def abbreviation(self, ms: int) -> str:
        """The zone's short name at ``ms`` (``CET``, ``CEST``, ``UTC``)."""
        return self._dt(ms).tzname() or self.name

    def text(self, ms: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """``ms`` as a wall time in the zone (``.123`` appended when the fmt ends in seconds and
        the milliseconds are not zero)."""
        d = self._dt(ms)
        out = d.strftime(fmt)
        frac = int(ms) % 1000
        if frac and fmt.endswith("%S"):
            out += f".{frac:03d}"
        return out

    def time(self, ms: int) -> str:
        """``14:30:05`` in the zone."""
        return self._dt(ms).strftime("%H:%M:%S")

    def shift(self, ts_ms) -> np.ndarray:
        """Chart x coordinates: each UTC ms plus the zone's offset at that instant (int64)."""
        ts = np.asarray(ts_ms, dtype="int64")
        if self.name == "UTC" or ts.size == 0:
            return ts.copy()
        first, last = self.offset_ms(int(ts[0])), self.offset_ms(int(ts[-1]))
        if first == last and self._fixed_between(int(ts[0]), int(ts[-1])):
            return ts + first
        return np.fromiter((t + self.offset_ms(int(t)) for t in ts), "int64", ts.size)

    def _fixed_between(self, a: int, b: int) -> bool:
        # (offsets equal at both ends and at the middle: no DST change inside a chart window of
        # at most a few weeks; the per-point path handles anything else)
        return self.offset_ms((a + b) // 2) == self.offset_ms(a)

    def parse(self, text: str) -> int:
        """A local wall time (``2026-02-10 14:30``, ``2026-02-10T14:30:00``) in the zone → UTC ms.

        Raises ValueError with a plain message for anything else."""
        raw = str(text or "").strip().replace("T", " ")
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
            try:
                d = _dt.datetime.strptime(raw, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"{text!r} is not a time: write it as YYYY-MM-DD HH:MM (in {self.name})")
        return int(d.replace(tzinfo=self.zone).timestamp() * 1000)

    def from_datetime(self, value) -> int:
        """A datetime from a picker → UTC ms (a naive one is a wall time in this zone)."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return int(value.timestamp() * 1000)

    def to_naive(self, ms: int) -> _dt.datetime:
        """UTC ms → the naive wall time in this zone (what a NaiveDatetimePicker holds)."""
        return self._dt(ms).replace(tzinfo=None, microsecond=0)


def median_cadence_ms(ts_ms) -> float | None:
    """The median interval between consecutive timestamps (None: fewer than two)."""
    ts = np.asarray(ts_ms, dtype="int64")
    if ts.size < 2:
        return None
    steps = np.diff(ts)
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else None


def with_gaps(ts_ms, *series, factor: float = theme.GAP_FACTOR, cadence_ms: float | None = None):
    """Insert a NaN point wherever the interval exceeds ``factor`` × the median cadence, so a
    chart line breaks there instead of drawing a straight line across missing data.

    Returns ``(ts, *series)`` as new arrays (ts int64, series float64)."""
    ts = np.asarray(ts_ms, dtype="int64")
    arrays = [np.asarray(s, dtype="float64") for s in series]
    cadence = cadence_ms if cadence_ms is not None else median_cadence_ms(ts)
    if cadence is None or ts.size < 2:
        return (ts.copy(), *[a.copy() for a in arrays])
    steps = np.diff(ts)
    at = np.flatnonzero(steps > factor * cadence) + 1
    if not at.size:
        return (ts.copy(), *[a.copy() for a in arrays])
    middles = ts[at - 1] + steps[at - 1] // 2
    out_ts = np.insert(ts, at, middles)
    return (out_ts, *[np.insert(a, at, np.nan) for a in arrays])


def stale_limit_s(cadence_ms: float | None) -> float:
    """How old the newest reading may be before the data count as stale: ``theme.STALE_AFTER_S``,
    or ``theme.STALE_CADENCES`` readings' worth for an asset that reports less often."""
    if cadence_ms is None:
        return theme.STALE_AFTER_S
    return max(theme.STALE_AFTER_S, theme.STALE_CADENCES * cadence_ms / 1000.0)


def data_age_s(newest_ts_ms: int | None, now_ms: int) -> float | None:
    """Seconds between the newest reading's timestamp and now (None: no reading)."""
    if newest_ts_ms is None:
        return None
    return max(0.0, (int(now_ms) - int(newest_ts_ms)) / 1000.0)


def describe_age(seconds: float) -> str:
    """``19 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
