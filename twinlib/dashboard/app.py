"""The dashboard itself: layout, the refresh tick, and the live loop on the kernel's event loop.

A tick has two halves. `DashboardData.collect(plan)` runs the queries (on a worker thread in the
live loop, so a slow query never freezes the widgets); `_apply(tick)` moves what was read into
the widgets on the kernel's loop thread, marks updated in place inside `hold_sync`. `refresh()`
runs both halves synchronously: the notebook calls it once for the first paint, tests call it
instead of waiting for the loop.
"""

from __future__ import annotations

import asyncio
import bisect
import html
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import ipywidgets as widgets
import numpy as np
from traitlets import Bool, Int, Unicode, observe

from twinlib.dashboard import theme
from twinlib.dashboard.alarms import AlarmList
from twinlib.dashboard.cards import MetricCard, StatusCard, trend_per_minute
from twinlib.dashboard.chart import ChartPanel
from twinlib.dashboard.data import DashboardData, Plan, Tick, alarm_key
from twinlib.dashboard.fleet import FleetOverview
from twinlib.dashboard.status import describe_forecast, fleet_level
from twinlib.dashboard.table import RecentTable

__all__ = ["Dashboard"]

log = logging.getLogger(__name__)

SENSORS = ("temperature", "vibration", "pressure")


def _fmt(sensor: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    unit = theme.SENSOR_UNITS.get(sensor, "")
    return f"{value:.{theme.SENSOR_DECIMALS.get(sensor, 2)}f}" + (f" {unit}" if unit else "")


def _clock_text(ts_ms: int) -> str:
    from twinlib.timeutil import format_ts

    return format_ts(int(ts_ms))[11:19]


class Dashboard(widgets.VBox):
    """The live fleet dashboard: fleet tiles, four cards, three charts, recent readings, alarms.

    State lives in traitlets: `asset` (shown in detail), `window_s` (chart window), `cursor`
    (the last reading id seen), `state` (`live` | `stale` | `nodata`), `stale`, `message`.
    """

    asset = Unicode("")
    window_s = Int(theme.DEFAULT_WINDOW_S)
    cursor = Int(0)
    state = Unicode("nodata")
    stale = Bool(False)
    message = Unicode("")
    ticks = Int(0)

    def __init__(self, data: DashboardData, *, settings=None,
                 clock: Callable[[], float] = time.monotonic, **kwargs):
        from twinlib.config import THRESHOLDS

        self.data = data
        self.settings = settings
        self.thresholds = dict(THRESHOLDS)
        self._clock = clock
        self._started = clock()
        self._last_arrival: float | None = None
        self._history_at: float | None = None
        self._forecast_at: float | None = None
        self._statuses_pending = True       # fleet statuses not read yet (or the alarms changed)
        self._anomalies: list | None = None  # detection messages for the shown newest reading
        self._generation = 0
        self._needs_reload = True
        self._applying = False
        self._buffer: deque = deque()
        self._latest: dict = {}
        self._alarms: list = []
        self._statuses: dict | None = None
        self._forecasts: dict | None = {}
        self._history = None
        self._bucket_s = 0
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None

        self.style_html = widgets.HTML(theme.CSS)
        self.style_html.layout.display = "none"
        title = widgets.HTML(f"<h1>{html.escape(theme.TITLE)}</h1><p>{html.escape(theme.SUBTITLE)}</p>")
        title.add_class("twin-title")
        self.live_badge = widgets.HTML()
        self.window_picker = widgets.ToggleButtons(
            options=list(theme.WINDOWS), value=kwargs.get("window_s", theme.DEFAULT_WINDOW_S),
            tooltips=[f"Show the last {label}" for label, _ in theme.WINDOWS])
        self.window_picker.add_class("twin-window")
        self.window_picker.observe(self._on_window_pick, "value")
        spacer = widgets.Box()
        spacer.add_class("twin-spacer")
        self.summary = widgets.HTML()
        self.summary.add_class("twin-summary")
        header = widgets.HBox([title, spacer, self.summary, self.live_badge, self.window_picker])
        header.add_class("twin-header")

        self.fleet = FleetOverview()
        self.fleet.observe(self._on_fleet_select, "selected")
        self.message_html = widgets.HTML()
        self.message_html.add_class("twin-message")

        self.cards = {s: MetricCard(s, self.thresholds.get(s)) for s in SENSORS}
        self.status_card = StatusCard()
        card_grid = widgets.GridBox([*self.cards.values(), self.status_card])
        card_grid.add_class("twin-cards")

        self.chart_panel = ChartPanel(self.thresholds, SENSORS)
        self.charts = self.chart_panel.charts
        self.table = RecentTable(self.thresholds)
        self.alarm_list = AlarmList(on_acknowledge=self.acknowledge)
        lower = widgets.GridBox([self.table, self.alarm_list])
        lower.add_class("twin-lower")

        super().__init__(children=[self.style_html, header, self.fleet, self.message_html,
                                   card_grid, self.chart_panel, lower], **kwargs)
        self.add_class("twin-dashboard")
        self._render_badge()
        self._render_message()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, **overrides) -> "Dashboard":
        """Build the dashboard on the database named by the settings (`TWIN_DB`, ...)."""
        from twinlib.config import get_settings

        settings = get_settings(**overrides)
        return cls(DashboardData(settings.db_path), settings=settings)

    def thresholds_for(self, asset_id: str | None) -> dict:
        """Alarm thresholds of one asset (settings file overrides, else the defaults)."""
        if self.settings is not None:
            return self.settings.thresholds(asset_id)
        from twinlib.config import THRESHOLDS

        return dict(THRESHOLDS)

    # -- the tick ----------------------------------------------------------------------------
    def refresh(self, light: bool = False) -> Tick:
        """Run one tick synchronously (first paint, tests, a plain kernel without the loop).

        `light=True` leaves out the detection and forecast wings (their first import alone can
        take a second): the page shows readings at once and the live loop's first tick, moments
        later, adds the status checks, fleet statuses and forecasts.
        """
        tick = self.data.collect(self._plan(light=light))
        self._apply(tick)
        return tick

    def _plan(self, light: bool = False) -> Plan:
        now = self._clock()
        reload = self._needs_reload or not self.asset   # nothing chosen yet: look again
        history_since = None
        if not reload and self.window_s > theme.LIVE_WINDOW_MAX_S and self._due(self._history_at, theme.HISTORY_REFRESH_S, now):
            if self._history is not None and len(self._history):
                history_since = int(self._history["bucket"].iloc[-1])
            elif self.asset in self._latest:
                history_since = self._latest[self.asset].ts - self.window_s * 1000
        return Plan(
            generation=self._generation,
            cursor=None if reload else self.cursor,
            asset=self.asset,
            window_s=self.window_s,
            history_since=history_since,
            # Statuses summarise the active alarms: read once, then whenever those change
            # (collect() sees that), never on a timer, so a steady tick stays history-independent.
            want_statuses=not light and self._statuses_pending,
            want_forecasts=not light and self._due(self._forecast_at, theme.FORECAST_REFRESH_S, now),
            assets=tuple(sorted(self._latest)),
            alarm_key=alarm_key(self._alarms),
            detect=not light,
            thresholds=tuple(sorted(self.thresholds_for(self.asset or None).items())),
            newest=self._latest.get(self.asset) if self._anomalies is None else None,
        )

    @staticmethod
    def _due(last: float | None, every: float, now: float) -> bool:
        return last is None or now - last >= every

    def _apply(self, tick: Tick) -> None:
        if tick.plan.generation != self._generation:
            return            # the asset or window changed while the queries ran: drop it
        now = self._clock()
        self.ticks += 1
        if tick.error:
            self._needs_reload = True
            self.message = (f"{tick.error} — waiting for it (create it with `twin init-db`, feed it "
                            "with `twin run`, or start everything with `twin up`).")
            self.state = "nodata"
            self._render_all()
            return
        self.message = ""
        if tick.reloaded:
            self._needs_reload = False
            self._latest = dict(tick.latest)
            self._buffer = deque(tick.backfill)
            self._anomalies = None
            self._history = None
            self._set_thresholds(self.thresholds_for(tick.asset or None))
            self._applying = True
            try:
                self.asset = tick.asset
                self.fleet.selected = tick.asset
            finally:
                self._applying = False
        for reading in tick.readings:
            known = self._latest.get(reading.asset_id)
            if known is None or reading.ts >= known.ts:
                self._latest[reading.asset_id] = reading
            if reading.asset_id == self.asset:
                self._insert(reading)
        if tick.readings:
            self._last_arrival = now
        self._trim_buffer()
        self.cursor = int(tick.cursor)
        self._alarms = list(tick.alarms)
        if tick.plan.want_statuses:
            self._statuses = tick.statuses
            self._statuses_pending = False
        if tick.anomalies is not None:
            self._anomalies = tick.anomalies
        if tick.plan.want_forecasts:
            self._forecasts = tick.forecasts
            self._forecast_at = now
        if tick.history is not None:
            self._merge_history(tick)
            self._history_at = now
        reference = self._last_arrival if self._last_arrival is not None else self._started
        self.stale = bool(self._latest) and (now - reference) > theme.STALE_AFTER_S
        self.state = "nodata" if not self._latest else ("stale" if self.stale else "live")
        self._render_all()

    def _set_thresholds(self, thresholds: dict) -> None:
        self.thresholds = dict(thresholds)
        for sensor, card in self.cards.items():
            card.threshold = self.thresholds.get(sensor)
            self.charts[sensor].threshold = self.thresholds.get(sensor)
        self.table.thresholds = dict(self.thresholds)

    def _insert(self, reading) -> None:
        if not self._buffer or reading.ts > self._buffer[-1].ts:
            self._buffer.append(reading)
            return
        # A late reading (sources may deliver out of order): keep the buffer sorted by time.
        items = list(self._buffer)
        keys = [r.ts for r in items]
        at = bisect.bisect_left(keys, reading.ts)
        if at < len(items) and keys[at] == reading.ts:
            return
        items.insert(at, reading)
        self._buffer = deque(items)

    def _trim_buffer(self) -> None:
        if not self._buffer:
            return
        oldest = self._buffer[-1].ts - theme.LIVE_WINDOW_MAX_S * 1000
        while self._buffer and self._buffer[0].ts < oldest:
            self._buffer.popleft()
        while len(self._buffer) > theme.BACKFILL_MAX_ROWS:
            self._buffer.popleft()

    def _merge_history(self, tick: Tick) -> None:
        import pandas as pd

        fresh = tick.history
        if self._history is None or tick.bucket_s != self._bucket_s or not len(self._history):
            self._history = fresh
        elif len(fresh):
            kept = self._history[self._history["bucket"] < fresh["bucket"].iloc[0]]
            self._history = pd.concat([kept, fresh], ignore_index=True)
        self._bucket_s = tick.bucket_s
        if self.asset in self._latest and len(self._history):
            start = self._latest[self.asset].ts - self.window_s * 1000 - tick.bucket_s * 1000
            self._history = self._history[self._history["bucket"] >= start].reset_index(drop=True)

    # -- rendering ---------------------------------------------------------------------------
    def _render_all(self) -> None:
        self._render_badge()
        self._render_message()
        self._render_fleet()
        self._render_cards()
        self._render_charts()
        self.table.rows = list(reversed(list(self._buffer)[-theme.TABLE_ROWS:]))
        self.alarm_list.alarms = self._alarms

    def _render_badge(self) -> None:
        newest = max((r.ts for r in self._latest.values()), default=None)
        if self.state == "live":
            text, cls = f"LIVE · newest {_clock_text(newest)}", "live"
        elif self.state == "stale":
            reference = self._last_arrival if self._last_arrival is not None else self._started
            text, cls = f"DATA STALE · nothing new for {self._clock() - reference:.0f} s", "stale"
        else:
            text, cls = "NO DATA", "nodata"
        self.live_badge.value = (f'<div class="twin-live {cls}" title="refresh every '
                                 f'{theme.REFRESH_INTERVAL_S:g} s"><span class="dot"></span>{html.escape(text)}</div>')

    def _render_message(self) -> None:
        self.message_html.value = html.escape(self.message)
        self.message_html.layout.display = "" if self.message else "none"

    def _render_fleet(self) -> None:
        infos = []
        fleet_newest = max((r.ts for r in self._latest.values()), default=0)
        for asset_id in sorted(self._latest):
            reading = self._latest[asset_id]
            level = fleet_level(asset_id, reading, fleet_newest, self._statuses, self._alarms)
            values = " · ".join(_fmt(s, getattr(reading, s)) for s in SENSORS)
            infos.append({"asset_id": asset_id, "level": level, "values": values,
                          "forecast": describe_forecast((self._forecasts or {}).get(asset_id),
                                                        available=self._forecasts is not None)})
        with self.fleet.hold_sync():
            self.fleet.assets = infos
            self.fleet.selected = self.asset
        levels = [i["level"] for i in infos]
        open_alarms = sum(1 for a in self._alarms if not a.get("acked"))
        parts = [f"<b>{len(infos)}</b> assets"]
        for level in ("critical", "warning", "stale"):
            if levels.count(level):
                parts.append(f'<span class="{level}">{levels.count(level)} {level}</span>')
        parts.append(f"<b>{open_alarms}</b> unacknowledged alarm{'s' if open_alarms != 1 else ''}")
        self.summary.value = " · ".join(parts)

    def _recent(self, sensor: str, seconds: float):
        rows = list(self._buffer)
        if not rows:
            return np.array([], "int64"), np.array([], "float64")
        start = rows[-1].ts - seconds * 1000
        rows = [r for r in rows if r.ts >= start]
        ts = np.fromiter((r.ts for r in rows), "int64", len(rows))
        values = np.array([np.nan if getattr(r, sensor) is None else getattr(r, sensor) for r in rows],
                          dtype="float64")
        return ts, values

    def _render_cards(self) -> None:
        newest = self._latest.get(self.asset)
        for sensor, card in self.cards.items():
            if newest is None:
                card.update(None)
                continue
            ts, values = self._recent(sensor, theme.TREND_WINDOW_S)
            spark = [r for r in list(self._buffer)[-theme.SPARK_POINTS:]]
            spark_values = [np.nan if getattr(r, sensor) is None else getattr(r, sensor) for r in spark]
            value = getattr(newest, sensor)
            card.update(np.nan if value is None else value, spark_values, trend_per_minute(ts, values))
        self._render_status(newest)

    def _render_status(self, newest) -> None:
        if newest is None:
            detail = "no readings yet" if not self.message else "no database"
            self.status_card.update("nodata", [], detail)
            return
        if self._anomalies is None:
            self.status_card.update("checking", [], f"{self.asset} · reading of {_clock_text(newest.ts)}")
            return
        messages = list(self._anomalies)
        for alarm in AlarmList.ordered(self._alarms):
            if alarm.get("asset_id") == self.asset:
                flag = " (acked)" if alarm.get("acked") else ""
                messages.append(f"{alarm.get('message', alarm.get('rule', 'alarm'))}{flag}")
        detail = f"{self.asset} · reading of {_clock_text(newest.ts)}"
        if messages:
            self.status_card.update("alert", messages, detail)
        elif self.stale:
            self.status_card.update("stale", [], f"{self.asset} · no new reading")
        else:
            self.status_card.update("normal", [], detail)

    def _render_charts(self) -> None:
        newest = self._latest.get(self.asset)
        if newest is None:
            return
        end = newest.ts
        start = end - self.window_s * 1000
        if self.window_s <= theme.LIVE_WINDOW_MAX_S:
            for sensor, chart in self.charts.items():
                ts, values = self._recent(sensor, self.window_s)
                chart.show(ts, values, start_ms=start, end_ms=end)
            return
        history = self._history
        if history is None or not len(history):
            for chart in self.charts.values():
                chart.show([], [], start_ms=start, end_ms=end)
            return
        centres = history["bucket"].to_numpy("int64") + self._bucket_s * 500
        for sensor, chart in self.charts.items():
            chart.show(centres, history[f"{sensor}_mean"].to_numpy("float64", na_value=np.nan),
                       start_ms=start, end_ms=end,
                       lo=history[f"{sensor}_min"].to_numpy("float64", na_value=np.nan),
                       hi=history[f"{sensor}_max"].to_numpy("float64", na_value=np.nan))

    # -- handlers ----------------------------------------------------------------------------
    def _on_fleet_select(self, change) -> None:
        if not self._applying and change["new"]:
            self.asset = change["new"]

    def _on_window_pick(self, change) -> None:
        self.window_s = int(change["new"])

    @observe("asset")
    def _on_asset_change(self, change) -> None:
        if self._applying or change["new"] == change["old"]:
            return
        self._request_reload()

    @observe("window_s")
    def _on_window_change(self, change) -> None:
        if self.window_picker.value != change["new"]:
            self.window_picker.value = change["new"]
        live = theme.LIVE_WINDOW_MAX_S
        if change["old"] <= live and change["new"] <= live and self._latest:
            self._render_charts()      # the buffer already holds every live window
            return
        self._request_reload()

    def _request_reload(self) -> None:
        self._generation += 1
        self._needs_reload = True
        self._history = None
        if self._wake is not None:
            self._wake.set()

    def acknowledge(self, alert_id: int) -> None:
        """Acknowledge an alarm (the Ack button) and redraw the alarm list at once."""
        try:
            self.data.acknowledge(alert_id)
            self._alarms = self.data.active_alarms()
        except KeyError:
            self.message = f"alarm {alert_id} no longer exists"
        self._render_message()
        self.alarm_list.alarms = self._alarms
        self._render_status(self._latest.get(self.asset))

    # -- the live loop -----------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        """Start refreshing every `theme.REFRESH_INTERVAL_S` on the kernel's running event loop."""
        if self._task is not None and not self._task.done():
            return self._task
        loop = asyncio.get_event_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-dashboard-db")
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run())
        return self._task

    def stop(self) -> None:
        """Stop the live loop and close the worker's connection."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._executor is not None:
            self._executor.submit(self.data.close)
            self._executor.shutdown(wait=False)
            self._executor = None

    @property
    def running(self) -> bool:
        """True while the live loop runs."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                plan = self._plan()
                tick = await loop.run_in_executor(self._executor, self.data.collect, plan)
                self._apply(tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:       # a failed tick must not end the live loop
                log.exception("dashboard refresh failed")
                self.message = f"refresh failed: {exc}"
                self._render_message()
            wait = max(0.05, theme.REFRESH_INTERVAL_S - (loop.time() - began))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
