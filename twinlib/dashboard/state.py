"""The dashboard's state: what is selected, what was read, the cursors — no widgets.

`DashboardState` is a plain object. `plan()` says what the next tick must read, `apply(tick)`
folds a tick in (newest reading per asset, the selected asset's recent readings, alarms,
statuses, the monitor's heartbeat, forecasts, downsampled history, each asset's kind and
location, the limits in force for the shown asset), and the read-only helpers (`kind_of`,
`signals`, `recent`, `table_rows`, `fleet_infos`, `level_of`, `detection`, `data_age_s`) give
the views what to draw. The views
(`twinlib.dashboard.app.Dashboard` and its widgets) hold no data of their own.

There is one status source: `twinlib.detect.asset_status` (the alarms the engine recorded, the
same call as the API's `/assets`) while the monitor's heartbeat is fresh; without one the state
says "detection not running" (`detection()`) and invents nothing from raw readings. Staleness is
the age of the newest reading's timestamp against the wall clock, never time since page load.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twinlib.dashboard import theme
from twinlib.dashboard.clock import data_age_s, median_cadence_ms, stale_limit_s
from twinlib.dashboard.data import Plan, Tick, alarm_key
from twinlib.dashboard.signals import SignalView, resolve_kind, signal_views
from twinlib.dashboard.status import asset_level, describe_forecast, detection_state

__all__ = ["DashboardState"]


@dataclass
class DashboardState:
    """Everything the dashboard knows between ticks (see the module docstring)."""

    settings: Any = None                 # twinlib.config.Settings, or None (built-in kinds)
    started: float = 0.0                 # clock time the dashboard started
    asset: str = ""                      # shown in detail
    window_s: int = theme.DEFAULT_WINDOW_S
    range_ms: tuple | None = None        # a custom (start, end) in UTC ms instead of a window
    cursor: int = 0                      # the last reading id seen
    generation: int = 0                  # bumped when asset or window change: late ticks dropped
    needs_reload: bool = True
    latest: dict = field(default_factory=dict)        # asset_id -> newest Reading
    meta: dict = field(default_factory=dict)          # asset_id -> {"kind", "location"} (stored)
    buffer: deque = field(default_factory=deque)      # the shown asset's recent readings, by time
    alarms: list = field(default_factory=list)
    statuses: dict | None = None
    statuses_pending: bool = True        # fleet statuses not read yet (or the alarms changed)
    statuses_at: float | None = None
    heartbeat: dict | None = None        # the monitor's last heartbeat (None: never one)
    heartbeat_read: bool = False         # read at least once (a light first paint does not)
    now_ms: int = 0                      # wall clock of the last tick (UTC ms)
    forecasts: dict | None = field(default_factory=dict)
    limits: dict = field(default_factory=dict)        # asset_id -> limits_in_force (as read)
    last_values: dict = field(default_factory=dict)   # asset_id -> signal -> (ts, newest value)
    history: Any = None                  # downsample buckets (long windows)
    bucket_s: int = 0
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

    def signals(self, asset_id: str | None = None) -> tuple[SignalView, ...]:
        """The measured signals of the asset (default: the shown one) as the views draw them,
        with the limits the alarm engine applies to it (`twinlib.detect.limits_in_force`, read
        by the tick: the kind's, an override, or learned); the kind's levels until they are read."""
        asset_id = self.asset if asset_id is None else asset_id
        return signal_views(self.kind_of(asset_id or None),
                            limits=self.limits.get(asset_id) if asset_id else None)

    # -- the tick --------------------------------------------------------------------------
    @property
    def span_s(self) -> int:
        """Seconds the charts span: the window, or the custom range."""
        if self.range_ms is not None:
            return max(1, (self.range_ms[1] - self.range_ms[0]) // 1000)
        return self.window_s

    @property
    def downsampled(self) -> bool:
        """True when the charts draw store.downsample buckets (long windows, custom ranges)."""
        return self.range_ms is not None or self.window_s > theme.LIVE_WINDOW_MAX_S

    def plan(self, now: float, light: bool = False, now_ms: int | None = None) -> Plan:
        reload = self.needs_reload or not self.asset   # nothing chosen yet: look again
        history_since = None
        if not reload and self.downsampled and _due(self.history_at, theme.HISTORY_REFRESH_S, now):
            if self.history is not None and len(self.history):
                history_since = int(self.history["bucket"].iloc[-1])
            elif self.range_ms is not None:
                history_since = self.range_ms[0]
            elif self.asset in self.latest:
                history_since = self.latest[self.asset].ts - self.window_s * 1000
            newest = self.latest.get(self.asset)
            if self.range_ms is not None and self.history is not None and newest is not None \
                    and self.range_ms[1] < newest.ts:
                history_since = None      # a range that ended before the newest reading: read once
        pumps = tuple(a for a in sorted(self.latest) if self.kind_of(a).physics == "pump")
        return Plan(
            generation=self.generation,
            cursor=None if reload else self.cursor,
            asset=self.asset,
            window_s=self.window_s,
            history_since=history_since,
            # Statuses summarise the active alarms: read once, then whenever those change
            # (collect() sees that), never on a timer, so a steady tick stays history-independent.
            want_statuses=not light and (self.statuses_pending
                                         or _due(self.statuses_at, theme.STATUS_REFRESH_S, now)),
            want_forecasts=not light and _due(self.forecast_at, theme.FORECAST_REFRESH_S, now),
            # the limits in force change when the settings do or the engine has learned them:
            # read with the statuses (and at once for an asset whose limits are not known yet)
            want_limits=not light and (reload or self.asset not in self.limits
                                       or self.statuses_pending
                                       or _due(self.statuses_at, theme.STATUS_REFRESH_S, now)),
            assets=tuple(sorted(self.latest)),
            alarm_key=alarm_key(self.alarms),
            detect=not light,
            signals=self.signals() if self.asset else (),
            known=frozenset(self.meta),
            # The forecast wing models the pump's physics; other kinds get no forecast line.
            forecastable=pumps if self.latest else None,
            range_ms=self.range_ms,
            now_ms=int(now_ms) if now_ms is not None else 0,
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
        if tick.plan.now_ms:
            self.now_ms = tick.plan.now_ms
        self.meta.update(tick.meta)
        if tick.reloaded:
            self.needs_reload = False
            self.latest = dict(tick.latest)
            self.buffer = deque(tick.backfill)
            self.history = None
            self.asset = tick.asset
            for reading in (*tick.latest.values(), *tick.backfill):
                self.remember(reading)
        for reading in tick.readings:
            self.remember(reading)
            known = self.latest.get(reading.asset_id)
            if known is None or reading.ts >= known.ts:
                self.latest[reading.asset_id] = reading
            if reading.asset_id == self.asset:
                self.insert(reading)
        self.trim()
        self.cursor = int(tick.cursor)
        self.alarms = list(tick.alarms)
        if tick.plan.want_statuses:
            self.statuses = tick.statuses
            self.statuses_pending = False
            self.statuses_at = now
        if tick.plan.detect:
            self.heartbeat = tick.heartbeat
            self.heartbeat_read = True
        if tick.limits:
            self.limits.update(tick.limits)
        if tick.plan.want_forecasts:
            self.forecasts = tick.forecasts
            self.forecast_at = now
        if tick.history is not None:
            self.merge_history(tick)
            self.history_at = now
        return True

    def select(self, asset: str | None = None, window_s: int | None = None,
               range_ms: tuple | None = None) -> None:
        """Choose another asset, window or custom range (start, end UTC ms): the next tick
        reloads, ticks in flight are dropped. A window replaces a range and the other way round."""
        if asset is not None:
            self.asset = asset
        if window_s is not None:
            self.window_s = int(window_s)
            self.range_ms = None
        if range_ms is not None:
            start, end = (int(v) for v in range_ms)
            if end <= start:
                raise ValueError("the range must end after it starts")
            self.range_ms = (start, end)
        self.generation += 1
        self.needs_reload = True
        self.history = None

    # -- what the page says about time and status -----------------------------------------
    def newest_ts(self) -> int | None:
        """The newest reading's timestamp over the fleet (UTC ms)."""
        return max((r.ts for r in self.latest.values()), default=None)

    def data_age_s(self, asset_id: str | None = None) -> float | None:
        """Age of the newest reading (of the asset, else of the fleet) at the last tick's clock."""
        if asset_id is not None:
            reading = self.latest.get(asset_id)
            return data_age_s(reading.ts if reading is not None else None, self.now_ms)
        return data_age_s(self.newest_ts(), self.now_ms)

    def stale_limit_s(self) -> float:
        """How old the newest reading may be before "data stale": follows the shown asset's
        cadence (an asset reporting every minute is not stale after 10 s)."""
        return stale_limit_s(median_cadence_ms([r.ts for r in list(self.buffer)[-200:]]))

    def stale(self, now: float | None = None) -> bool:
        """True when the newest reading is older than the stale limit (the data's age, measured
        against the wall clock — never the time since the page was opened)."""
        age = self.data_age_s()
        return bool(self.latest) and age is not None and age > self.stale_limit_s()

    def detection(self) -> dict:
        """Is a monitor running detection? ``{"running", "age_s", "text"}`` (from its heartbeat)."""
        if not self.heartbeat_read:
            return {"running": None, "age_s": None, "text": "checking"}
        return detection_state(self.heartbeat, self.now_ms)

    def level_of(self, asset_id: str) -> str:
        """The asset's status word: ok / warning / critical / stale (the alarms), or ``nodetect``
        when no monitor runs, ``unknown`` before the first status read."""
        return asset_level(asset_id, self.statuses, self.detection()["running"])

    def alarms_of(self, asset_id: str, active_only: bool = True) -> list[dict]:
        """The asset's alarms as listed (active ones unless ``active_only`` is False)."""
        return [a for a in self.alarms if a.get("asset_id") == asset_id
                and (not active_only or a.get("state", "active") == "active")]

    def signal_alarm(self, asset_id: str, signal: str) -> str:
        """``critical`` / ``warning`` when an active alarm of the asset names this signal (the
        card's colour), ``""`` otherwise or while detection is not running."""
        if not self.detection()["running"]:
            return ""
        severities = {a.get("severity") for a in self.alarms_of(asset_id) if a.get("sensor") == signal}
        return "critical" if "critical" in severities else ("warning" if "warning" in severities else "")

    # -- what was read -----------------------------------------------------------------------
    def remember(self, reading) -> None:
        """Keep each signal's newest value: a source that sends signals at different instants
        (OPC UA data changes, one MQTT value per topic) stores readings that hold only some of
        them, and a card must not blank out between two values of its signal."""
        values = getattr(reading, "values", None)
        if not isinstance(values, dict):
            return
        mine = self.last_values.setdefault(reading.asset_id, {})
        ts = int(reading.ts)
        for name, value in values.items():
            if value is None or value != value:
                continue
            known = mine.get(name)
            if known is None or ts >= known[0]:
                mine[name] = (ts, value)

    def value_of(self, asset_id: str, signal: str):
        """The signal's newest value seen for the asset (None: none yet)."""
        known = self.last_values.get(asset_id, {}).get(signal)
        return None if known is None else known[1]

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
        if self.range_ms is not None and len(self.history):
            start = self.range_ms[0] - tick.bucket_s * 1000
            self.history = self.history[self.history["bucket"] >= start].reset_index(drop=True)
        elif self.asset in self.latest and len(self.history):
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
        """One dict per asset for the fleet tiles: level, each signal's newest value with its
        unit, forecast, location."""
        infos = []
        for asset_id in sorted(self.latest):
            views = self.signals(asset_id)
            shown = views[:theme.TILE_VALUES]
            values = " · ".join(v.text(self.value_of(asset_id, v.name)) for v in shown)
            if len(views) > len(shown):
                values += f" · +{len(views) - len(shown)}"
            pumps = self.kind_of(asset_id).physics == "pump"
            level = self.level_of(asset_id)
            forecast = describe_forecast((self.forecasts or {}).get(asset_id),
                                         available=self.forecasts is not None, level=level) if pumps \
                else "no forecast model for this kind"
            infos.append({"asset_id": asset_id, "kind": self.kind_of(asset_id).name,
                          "location": self.location_of(asset_id),
                          "level": level, "values": values, "forecast": forecast})
        return infos


def _due(last: float | None, every: float, now: float) -> bool:
    return last is None or now - last >= every


def _values(rows, signal: str) -> np.ndarray:
    out = np.empty(len(rows), dtype="float64")
    for i, r in enumerate(rows):
        v = r.values.get(signal) if isinstance(getattr(r, "values", None), dict) else getattr(r, signal, None)
        out[i] = np.nan if v is None else v
    return out

