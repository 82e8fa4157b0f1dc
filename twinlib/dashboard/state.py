"""The dashboard's state: what is selected, what was read, the cursors — no widgets.

`DashboardState` is a plain object. `plan()` says what the next tick must read, `apply(tick)`
folds a tick in (newest reading per asset, the selected asset's recent readings, alarms,
statuses, forecasts, downsampled history, each asset's kind and location), and the read-only
helpers (`kind_of`, `signals`, `recent`, `table_rows`, `fleet_infos`) give the views what to draw.
The views (`twinlib.dashboard.app.Dashboard` and its widgets) hold no data of their own.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twinlib.dashboard import theme
from twinlib.dashboard.data import Plan, Tick, alarm_key
from twinlib.dashboard.signals import SignalView, resolve_kind, signal_views
from twinlib.dashboard.status import describe_forecast, fleet_level

__all__ = ["DashboardState"]


@dataclass
class DashboardState:
    """Everything the dashboard knows between ticks (see the module docstring)."""

    settings: Any = None                 # twinlib.config.Settings, or None (built-in kinds)
    started: float = 0.0                 # clock time the dashboard started
    asset: str = ""                      # shown in detail
    window_s: int = theme.DEFAULT_WINDOW_S
    cursor: int = 0                      # the last reading id seen
    generation: int = 0                  # bumped when asset or window change: late ticks dropped
    needs_reload: bool = True
    latest: dict = field(default_factory=dict)        # asset_id -> newest Reading
    meta: dict = field(default_factory=dict)          # asset_id -> {"kind", "location"} (stored)
    buffer: deque = field(default_factory=deque)      # the shown asset's recent readings, by time
    alarms: list = field(default_factory=list)
    statuses: dict | None = None
    statuses_pending: bool = True        # fleet statuses not read yet (or the alarms changed)
    forecasts: dict | None = field(default_factory=dict)
    anomalies: list | None = None        # limit messages for the shown newest reading
    history: Any = None                  # downsample buckets (long windows)
    bucket_s: int = 0
    last_arrival: float | None = None
    history_at: float | None = None
    forecast_at: float | None = None
    error: str = ""

    # -- the asset's kind ----------------------------------------------------------------------
    def kind_of(self, asset_id: str | None):
        """The asset's kind (settings file, then the store's record, then its readings)."""
        reading = self.latest.get(asset_id) if asset_id else None
        stored = (self.meta.get(asset_id) or {}).get("kind") if asset_id else None
        stored = stored or getattr(reading, "kind", None)
        values = getattr(reading, "values", None) if reading is not None else None
        return resolve_kind(asset_id, stored, self.settings, values if isinstance(values, dict) else None)

    def location_of(self, asset_id: str) -> str | None:
        stored = (self.meta.get(asset_id) or {}).get("location")
        if self.settings is not None:
            return self.settings.location_for(asset_id, stored)
        return stored

    def overrides(self, asset_id: str | None) -> dict:
        """High warning levels the settings file sets for this asset (`[thresholds]`,
        `[assets."<id>".thresholds]`), where they differ from the defaults."""
        if self.settings is None:
            return {}
        from twinlib.config import THRESHOLDS

        return {k: v for k, v in self.settings.thresholds(asset_id).items() if THRESHOLDS.get(k) != v}

    def signals(self, asset_id: str | None = None) -> tuple[SignalView, ...]:
        """The measured signals of the asset (default: the shown one) as the views draw them."""
        asset_id = self.asset if asset_id is None else asset_id
        return signal_views(self.kind_of(asset_id or None), self.overrides(asset_id or None))

    # -- the tick --------------------------------------------------------------------------
    def plan(self, now: float, light: bool = False) -> Plan:
        reload = self.needs_reload or not self.asset   # nothing chosen yet: look again
        history_since = None
        if not reload and self.window_s > theme.LIVE_WINDOW_MAX_S \
                and _due(self.history_at, theme.HISTORY_REFRESH_S, now):
            if self.history is not None and len(self.history):
                history_since = int(self.history["bucket"].iloc[-1])
            elif self.asset in self.latest:
                history_since = self.latest[self.asset].ts - self.window_s * 1000
        pumps = tuple(a for a in sorted(self.latest) if self.kind_of(a).physics == "pump")
        return Plan(
            generation=self.generation,
            cursor=None if reload else self.cursor,
            asset=self.asset,
            window_s=self.window_s,
            history_since=history_since,
            # Statuses summarise the active alarms: read once, then whenever those change
            # (collect() sees that), never on a timer, so a steady tick stays history-independent.
            want_statuses=not light and self.statuses_pending,
            want_forecasts=not light and _due(self.forecast_at, theme.FORECAST_REFRESH_S, now),
            assets=tuple(sorted(self.latest)),
            alarm_key=alarm_key(self.alarms),
            detect=not light,
            signals=self.signals() if self.asset else (),
            newest=self.latest.get(self.asset) if self.anomalies is None else None,
            known=frozenset(self.meta),
            # The forecast wing models the pump's physics; other kinds get no forecast line.
            forecastable=pumps if self.latest else None,
        )

    def apply(self, tick: Tick, now: float) -> bool:
        """Fold a tick in; False when it was planned for another asset or window (dropped)."""
        if tick.plan.generation != self.generation:
            return False
        if tick.error:
            self.needs_reload = True
            self.error = tick.error
            return True
        self.error = ""
        self.meta.update(tick.meta)
        if tick.reloaded:
            self.needs_reload = False
            self.latest = dict(tick.latest)
            self.buffer = deque(tick.backfill)
            self.anomalies = None
            self.history = None
            self.asset = tick.asset
        for reading in tick.readings:
            known = self.latest.get(reading.asset_id)
            if known is None or reading.ts >= known.ts:
                self.latest[reading.asset_id] = reading
            if reading.asset_id == self.asset:
                self.insert(reading)
        if tick.readings:
            self.last_arrival = now
        self.trim()
        self.cursor = int(tick.cursor)
        self.alarms = list(tick.alarms)
        if tick.plan.want_statuses:
            self.statuses = tick.statuses
            self.statuses_pending = False
        if tick.anomalies is not None and tick.plan.asset == self.asset:
            # (checked against the planned asset's limits: an asset chosen by this reload is
            # checked again next tick, with its own kind's limits)
            self.anomalies = tick.anomalies
        if tick.plan.want_forecasts:
            self.forecasts = tick.forecasts
            self.forecast_at = now
        if tick.history is not None:
            self.merge_history(tick)
            self.history_at = now
        return True

    def select(self, asset: str | None = None, window_s: int | None = None) -> None:
        """Choose another asset or window: the next tick reloads, ticks in flight are dropped."""
        if asset is not None:
            self.asset = asset
        if window_s is not None:
            self.window_s = int(window_s)
        self.generation += 1
        self.needs_reload = True
        self.history = None

    def stale(self, now: float) -> bool:
        reference = self.last_arrival if self.last_arrival is not None else self.started
        return bool(self.latest) and (now - reference) > theme.STALE_AFTER_S

    # -- what was read -----------------------------------------------------------------------
    def insert(self, reading) -> None:
        if not self.buffer or reading.ts > self.buffer[-1].ts:
            self.buffer.append(reading)
            return
        # A late reading (sources may deliver out of order): keep the buffer sorted by time.
        items = list(self.buffer)
        keys = [r.ts for r in items]
        at = bisect.bisect_left(keys, reading.ts)
        if at < len(items) and keys[at] == reading.ts:
            return
        items.insert(at, reading)
        self.buffer = deque(items)

    def trim(self) -> None:
        if not self.buffer:
            return
        oldest = self.buffer[-1].ts - theme.LIVE_WINDOW_MAX_S * 1000
        while self.buffer and self.buffer[0].ts < oldest:
            self.buffer.popleft()
        while len(self.buffer) > theme.BACKFILL_MAX_ROWS:
            self.buffer.popleft()

    def merge_history(self, tick: Tick) -> None:
        import pandas as pd

        fresh = tick.history
        if self.history is None or tick.bucket_s != self.bucket_s or not len(self.history):
            self.history = fresh
        elif len(fresh):
            kept = self.history[self.history["bucket"] < fresh["bucket"].iloc[0]]
            self.history = pd.concat([kept, fresh], ignore_index=True)
        self.bucket_s = tick.bucket_s
        if self.asset in self.latest and len(self.history):
            start = self.latest[self.asset].ts - self.window_s * 1000 - tick.bucket_s * 1000
            self.history = self.history[self.history["bucket"] >= start].reset_index(drop=True)

    def recent(self, signal: str, seconds: float):
        """(ts, values) of the shown asset's readings over the last `seconds` (NaN: absent)."""
        rows = list(self.buffer)
        if not rows:
            return np.array([], "int64"), np.array([], "float64")
        start = rows[-1].ts - seconds * 1000
        rows = [r for r in rows if r.ts >= start]
        ts = np.fromiter((r.ts for r in rows), "int64", len(rows))
        return ts, _values(rows, signal)

    def spark(self, signal: str) -> list[float]:
        return list(_values(list(self.buffer)[-theme.SPARK_POINTS:], signal))

    def table_rows(self) -> list:
        return list(reversed(list(self.buffer)[-theme.TABLE_ROWS:]))

    def fleet_infos(self) -> list[dict]:
        """One dict per asset for the fleet tiles: level, newest values with units, forecast,
        location."""
        infos = []
        fleet_newest = max((r.ts for r in self.latest.values()), default=0)
        for asset_id in sorted(self.latest):
            reading = self.latest[asset_id]
            views = self.signals(asset_id)
            shown = views[:theme.TILE_VALUES]
            values = " · ".join(v.text(reading.values.get(v.name)) for v in shown)
            if len(views) > len(shown):
                values += f" · +{len(views) - len(shown)}"
            pumps = self.kind_of(asset_id).physics == "pump"
            forecast = describe_forecast((self.forecasts or {}).get(asset_id),
                                         available=self.forecasts is not None) if pumps \
                else "⏱ no forecast model for this kind"
            infos.append({"asset_id": asset_id, "kind": self.kind_of(asset_id).name,
                          "location": self.location_of(asset_id),
                          "level": fleet_level(asset_id, reading, fleet_newest, self.statuses, self.alarms),
                          "values": values, "forecast": forecast})
        return infos


def _due(last: float | None, every: float, now: float) -> bool:
    return last is None or now - last >= every


def _values(rows, signal: str) -> np.ndarray:
    out = np.empty(len(rows), dtype="float64")
    for i, r in enumerate(rows):
        v = r.values.get(signal) if isinstance(getattr(r, "values", None), dict) else getattr(r, signal, None)
        out[i] = np.nan if v is None else v
    return out

