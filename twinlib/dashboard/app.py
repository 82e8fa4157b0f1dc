"""The dashboard's views: the page layout, rendering from the state, and the live loop.

The data lives in a plain `DashboardState` (`twinlib.dashboard.state`): what is selected, what
was read, the cursors. A tick has two halves. `DashboardData.collect(plan)` runs the queries (on a
worker thread in the live loop, so a slow query never freezes the widgets); `state.apply(tick)`
folds the result in and `_render_all()` moves it into the widgets on the kernel's loop thread,
marks updated in place inside `hold_sync`. `refresh()` runs both halves synchronously: the
notebook calls it once for the first paint, tests call it instead of waiting for the loop.

What the page shows of the selected asset — cards, charts, their limit lines, the table's columns
and every unit — comes from its kind (`state.signals()`); the fleet tiles are grouped by location.
Every status on the page (tiles, cards, the System Status card, the summary) comes from the one
source `DashboardState.level_of` (the alarms, while a monitor's heartbeat is fresh; "detection not
running" otherwise). "Data stale" is the newest reading's age on the wall clock (`now_ms`). Times
are shown in the zone of the settings (`[dashboard] timezone` / `TWIN_TIMEZONE`, default UTC).
Besides the preset windows, "Range" shows a custom from–to span (wall times in that zone).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import ipywidgets as widgets
from traitlets import Bool, Int, Unicode, observe

from twinlib.dashboard import theme
from twinlib.dashboard.alarms import AlarmPanel
from twinlib.dashboard.cards import MetricCard, StatusCard, trend_per_minute
from twinlib.dashboard.chart import ChartPanel
from twinlib.dashboard.clock import ZoneClock, describe_age
from twinlib.dashboard.data import DashboardData, Plan, Tick
from twinlib.dashboard.fleet import FleetOverview
from twinlib.dashboard.state import DashboardState
from twinlib.dashboard.status import plain
from twinlib.dashboard.table import RecentTable

__all__ = ["Dashboard", "CardGrid"]

log = logging.getLogger(__name__)


class CardGrid(widgets.GridBox):
    """One `MetricCard` per measured signal of the shown asset's kind, then the status card;
    rows of up to five cards when the kind has more than three signals."""

    def __init__(self, status_card: StatusCard, **kwargs):
        self.status_card = status_card
        self.cards: dict[str, MetricCard] = {}
        self._key: tuple = ()
        super().__init__(children=[status_card], **kwargs)
        self.add_class("twin-cards")

    def set_signals(self, views) -> None:
        views = tuple(views)
        if views == self._key:
            return
        self._key = views
        self.cards = {v.name: MetricCard(v) for v in views}
        many = len(views) + 1 > 4
        (self.add_class if many else self.remove_class)("many")
        (self.add_class if many else self.remove_class)("cols-5")
        self.children = [*self.cards.values(), self.status_card]

    def show(self, state: DashboardState) -> None:
        newest = state.latest.get(state.asset)
        for name, card in self.cards.items():
            if newest is None:
                card.update(None)
                continue
            ts, values = state.recent(name, theme.TREND_WINDOW_S)
            value = state.value_of(state.asset, name)     # the signal's newest, whichever reading
            card.update(float("nan") if value is None else value, state.spark(name),
                        trend_per_minute(ts, values), alarm=state.signal_alarm(state.asset, name))


class Dashboard(widgets.VBox):
    """The live fleet dashboard: fleet tiles by location, a card and a chart per measured signal
    of the selected asset's kind, the status card, recent readings, alarms.

    The data lives in `self.model` (a `DashboardState`); the traitlets `asset` (shown in detail),
    `window_s` (chart window), `cursor` (the last reading id seen), `state` (`live` | `stale` |
    `nodata`), `stale`, `detecting` and `message` mirror it for the widgets and tests.

    `clock` is a monotonic clock (the loop's rhythm), `now_ms` the wall clock in UTC ms (the
    data's age); `timezone` overrides the settings' zone.
    """

    asset = Unicode("")
    window_s = Int(theme.DEFAULT_WINDOW_S)
    cursor = Int(0)
    state = Unicode("nodata")
    stale = Bool(False)
    detecting = Bool(False)      # a monitor's heartbeat is fresh: the statuses are current
    message = Unicode("")
    ticks = Int(0)

    def __init__(self, data: DashboardData, *, settings=None,
                 clock: Callable[[], float] = time.monotonic,
                 now_ms: Callable[[], int] | None = None, timezone: str | None = None, **kwargs):
        from twinlib.timeutil import now_ms as wall_ms

        self.data = data
        if settings is not None and getattr(data, "settings", None) is None:
            data.settings = settings
        self.settings = settings
        self._clock = clock
        self._now_ms = now_ms or wall_ms
        zone = timezone or getattr(settings, "dashboard_timezone", None) or "UTC"
        self.zone = ZoneClock(zone)
        self.model = DashboardState(settings=settings, started=clock(),
                                    window_s=kwargs.get("window_s", theme.DEFAULT_WINDOW_S))
        self._applying = False
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None

        self.style_html = widgets.HTML(theme.CSS)
        self.style_html.layout.display = "none"
        self.title_html = widgets.HTML()
        self.title_html.add_class("twin-title")
        self.live_badge = widgets.HTML()
        self.window_picker = widgets.ToggleButtons(
            options=list(theme.WINDOWS), value=kwargs.get("window_s", theme.DEFAULT_WINDOW_S),
            tooltips=[f"Show the last {label}" for label, _ in theme.WINDOWS])
        self.window_picker.add_class("twin-window")
        self.window_picker.observe(self._on_window_pick, "value")
        self.range_box = self._build_range_controls()
        spacer = widgets.Box()
        spacer.add_class("twin-spacer")
        self.summary = widgets.HTML()
        self.summary.add_class("twin-summary")
        controls = widgets.HBox([self.window_picker, self.range_toggle])
        controls.add_class("twin-controls")
        header = widgets.HBox([self.title_html, spacer, self.summary, self.live_badge, controls,
                               self.range_box])
        header.add_class("twin-header")

        self.fleet = FleetOverview()
        self.fleet.observe(self._on_fleet_select, "selected")
        self.message_html = widgets.HTML()
        self.message_html.add_class("twin-message")

        views = self.model.signals()
        self.status_card = StatusCard()
        self.card_grid = CardGrid(self.status_card)
        self.chart_panel = ChartPanel()
        self.table = RecentTable(signals=views, zone=self.zone)
        self._show_signals(views)
        self.alarm_list = AlarmPanel(data, settings, on_change=self._on_alarm_change)
        lower = widgets.GridBox([self.table, self.alarm_list])
        lower.add_class("twin-lower")

        super().__init__(children=[self.style_html, header, self.fleet, self.message_html,
                                   self.card_grid, self.chart_panel, lower], **kwargs)
        self.add_class("twin-dashboard")
        self._render_title(views)
        self._render_badge()
        self._render_message()

    @property
    def cards(self) -> dict[str, MetricCard]:
        """The metric cards of the shown asset, by signal name."""
        return self.card_grid.cards

    @property
    def charts(self) -> dict:
        """The charts of the shown asset, by signal name."""
        return self.chart_panel.charts

    @property
    def thresholds(self) -> dict:
        """High warning limits of the shown asset's signals that have one."""
        return {v.name: v.warning_high for v in self.model.signals() if v.warning_high is not None}

    # -- the custom time range ---------------------------------------------------------------
    def _build_range_controls(self) -> widgets.Box:
        """A "Range" button that opens from/to pickers (wall times in the dashboard's zone)."""
        self.range_toggle = widgets.ToggleButton(value=False, description="Range",
                                                 tooltip="Show a custom time range")
        self.range_toggle.add_class("twin-range-toggle")
        self.range_toggle.observe(self._on_range_toggle, "value")
        self.range_from = widgets.NaiveDatetimePicker(description="From")
        self.range_to = widgets.NaiveDatetimePicker(description="to")
        for picker in (self.range_from, self.range_to):
            picker.add_class("twin-range-picker")
            picker.style.description_width = "auto"
        self.range_apply = widgets.Button(description="Show", tooltip="Show this range")
        self.range_apply.add_class("twin-range-apply")
        self.range_apply.on_click(lambda _: self.apply_range())
        self.range_note = widgets.HTML()
        self.range_note.add_class("twin-range-note")
        box = widgets.HBox([self.range_from, self.range_to, self.range_apply, self.range_note])
        box.add_class("twin-range")
        box.layout.display = "none"
        return box

    def _on_range_toggle(self, change) -> None:
        if self._applying:
            return
        if change["new"]:
            newest = self.model.latest.get(self.model.asset)
            end = newest.ts if newest is not None else self._now_ms()
            if self.range_to.value is None:
                self.range_to.value = self.zone.to_naive(end)
            if self.range_from.value is None:
                self.range_from.value = self.zone.to_naive(end - self.model.window_s * 1000)
            self.range_box.layout.display = ""
        else:
            self.range_box.layout.display = "none"
            if self.model.range_ms is not None:      # back to the preset window
                self._applying = True
                try:
                    self.window_picker.value = self.window_s
                finally:
                    self._applying = False
                self._select_window(self.window_s)

    def apply_range(self, start=None, end=None) -> bool:
        """Show the range [start, end] (datetimes: naive ones are wall times in the dashboard's
        zone; ms ints: UTC), by default the pickers'. False (and a note) when it is not a range."""
        start = self.range_from.value if start is None else start
        end = self.range_to.value if end is None else end
        if start is None or end is None:
            self.range_note.value = '<span class="bad">choose both times</span>'
            return False
        def to_ms(v):
            return int(v) if isinstance(v, (int, float)) else self.zone.from_datetime(v)

        start_ms, end_ms = to_ms(start), to_ms(end)
        if end_ms <= start_ms:
            self.range_note.value = '<span class="bad">"to" must be after "from"</span>'
            return False
        self.range_note.value = html.escape(f"{describe_age((end_ms - start_ms) / 1000)} "
                                            f"({self.zone.label})")
        self.model.select(range_ms=(start_ms, end_ms))
        self._applying = True
        try:
            self.window_picker.value = None           # no preset is selected while a range is
            self.range_toggle.value = True
        finally:
            self._applying = False
        self.range_box.layout.display = ""
        self._wake_loop()
        return True

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, **overrides) -> "Dashboard":
        """Build the dashboard on the database named by the settings (`TWIN_DB`, ...)."""
        from twinlib.config import get_settings

        settings = get_settings(**overrides)
        return cls(DashboardData(settings.db_path, settings=settings), settings=settings)

    def thresholds_for(self, asset_id: str | None) -> dict:
        """High warning limits of one asset's measured signals (its kind, then the settings
        file's overrides)."""
        return {v.name: v.warning_high for v in self.model.signals(asset_id or "")
                if v.warning_high is not None}

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
        return self.model.plan(self._clock(), light=light, now_ms=self._now_ms())

    def _apply(self, tick: Tick) -> None:
        if not self.model.apply(tick, self._clock()):
            return            # the asset or window changed while the queries ran: dropped
        self.ticks += 1
        self._applying = True
        try:
            if tick.error:
                self.message = (f"{tick.error} — waiting for it (create it with `twin init-db`, feed "
                                "it with `twin run`, or start everything with `twin up`).")
                self.state = "nodata"
            else:
                self.message = ""
                self.asset = self.model.asset
                self.fleet.selected = self.model.asset
                self.cursor = self.model.cursor
                self.stale = self.model.stale()
                self.detecting = bool(self.model.detection()["running"])
                self.state = "nodata" if not self.model.latest else ("stale" if self.stale else "live")
        finally:
            self._applying = False
        self._render_all()

    # -- rendering ---------------------------------------------------------------------------
    def _show_signals(self, views) -> None:
        self.card_grid.set_signals(views)
        self.chart_panel.set_signals(views)
        self.table.signals = tuple(views)

    def _render_all(self) -> None:
        self._refresh_alarms()
        views = self.model.signals()
        self._show_signals(views)
        self._render_title(views)
        self._render_badge()
        self._render_message()
        self._render_fleet()
        self.card_grid.show(self.model)
        self._render_status(self.model.latest.get(self.model.asset))
        self._render_charts()
        self.table.rows = self.model.table_rows()

    def _render_title(self, views) -> None:
        kind = self.model.kind_of(self.model.asset or None)
        signals = ", ".join(v.label.lower() if v.label.istitle() else v.label for v in views)
        extra = f" ({kind.name})" if kind.name != "pump" else ""
        self.title_html.value = (f"<h1>{html.escape(theme.TITLE)}</h1>"
                                 f"<p>{html.escape(theme.SUBTITLE)}{html.escape(extra)} · "
                                 f"{html.escape(signals)}</p>")

    def _render_badge(self) -> None:
        newest = self.model.newest_ts()
        zone = self.zone
        if self.state == "live":
            text, cls = f"LIVE · newest {zone.time(newest)} {zone.abbreviation(newest)}", "live"
            title = f"refresh every {theme.REFRESH_INTERVAL_S:g} s"
        elif self.state == "stale":
            age = self.model.data_age_s() or 0.0
            text, cls = f"DATA STALE · newest reading {describe_age(age)} old", "stale"
            title = (f"newest reading {zone.text(newest)} ({zone.label}); stale after "
                     f"{self.model.stale_limit_s():g} s without a newer one")
        else:
            text, cls, title = "NO DATA", "nodata", "no reading in the database yet"
        self.live_badge.value = (f'<div class="twin-live {cls}" title="{html.escape(title)}">'
                                 f'<span class="dot"></span>{html.escape(text)}</div>')

    def _render_message(self) -> None:
        self.message_html.value = html.escape(self.message)
        self.message_html.layout.display = "" if self.message else "none"

    def _render_fleet(self) -> None:
        infos = self.model.fleet_infos()
        with self.fleet.hold_sync():
            self.fleet.assets = infos
            self.fleet.selected = self.model.asset
        levels = [i["level"] for i in infos]
        open_alarms = self.alarm_list.counts.get("unacknowledged", 0)
        parts = [f"<b>{len(infos)}</b> assets"]
        detection = self.model.detection()
        if detection["running"] is False and self.model.latest:
            parts.append(f'<span class="nodetect" title="{html.escape(detection["text"])}">'
                         'detection not running</span>')
        for level in ("critical", "warning", "stale"):
            if levels.count(level):
                parts.append(f'<span class="{level}">{levels.count(level)} {level}</span>')
        parts.append(f"<b>{open_alarms}</b> unacknowledged alarm{'s' if open_alarms != 1 else ''}")
        self.summary.value = " · ".join(parts)

    def _render_status(self, newest) -> None:
        """The System Status card of the shown asset, from the page's one status source."""
        m = self.model
        if newest is None:
            detail = "no readings yet" if not self.message else "no database"
            self.status_card.update("nodata", [], detail)
            return
        reading = f"{m.asset} · reading of {self.zone.time(newest.ts)}"
        detection = m.detection()
        if detection["running"] is None:
            self.status_card.update("checking", [], reading)
            return
        if not detection["running"]:
            self.status_card.update("nodetect", [], detection["text"])
            return
        level = m.level_of(m.asset)
        status = (m.statuses or {}).get(m.asset) or {}
        messages = [plain(x) for x in status.get("messages", [])] if isinstance(status, dict) else []
        if level in ("warning", "critical"):
            self.status_card.update("alert", messages, reading, severity=level)
        elif level == "stale":
            age = m.data_age_s(m.asset)
            self.status_card.update("stale", [], f"{m.asset} · newest reading "
                                    f"{describe_age(age or 0)} old")
        elif level == "ok":
            self.status_card.update("normal", [], reading)
        else:
            self.status_card.update("checking", [], reading)

    def _render_charts(self) -> None:
        import numpy as np

        m = self.model
        newest = m.latest.get(m.asset)
        if newest is None:
            return
        if m.range_ms is not None:
            start, end = m.range_ms
        else:
            end = newest.ts
            start = end - m.window_s * 1000
        if not m.downsampled:
            for name, chart in self.charts.items():
                ts, values = m.recent(name, m.window_s)
                chart.show(ts, values, start_ms=start, end_ms=end, zone=self.zone)
            return
        history = m.history
        if history is None or not len(history):
            for chart in self.charts.values():
                chart.show([], [], start_ms=start, end_ms=end, zone=self.zone)
            return
        centres = history["bucket"].to_numpy("int64") + m.bucket_s * 500

        def column(name):
            if name not in history.columns:
                return np.full(len(history), np.nan)
            return history[name].to_numpy("float64", na_value=np.nan)

        for name, chart in self.charts.items():
            chart.show(centres, column(f"{name}_mean"), start_ms=start, end_ms=end,
                       lo=column(f"{name}_min"), hi=column(f"{name}_max"), zone=self.zone,
                       cadence_ms=m.bucket_s * 1000)

    # -- handlers ----------------------------------------------------------------------------
    def _on_fleet_select(self, change) -> None:
        if not self._applying and change["new"]:
            self.asset = change["new"]

    def _on_window_pick(self, change) -> None:
        if change["new"] is None or self._applying:
            return
        if self.model.range_ms is not None:          # a preset replaces the custom range
            self._applying = True
            try:
                self.range_toggle.value = False
            finally:
                self._applying = False
            self.range_box.layout.display = "none"
            if int(change["new"]) == self.window_s:
                self._select_window(self.window_s)
                return
        self.window_s = int(change["new"])

    def _select_window(self, window_s: int) -> None:
        self.model.select(window_s=window_s)
        self._wake_loop()

    @observe("asset")
    def _on_asset_change(self, change) -> None:
        if self._applying or change["new"] == change["old"]:
            return
        self.model.select(asset=change["new"])
        self._wake_loop()

    @observe("window_s")
    def _on_window_change(self, change) -> None:
        if self.window_picker.value != change["new"]:
            self.window_picker.value = change["new"]
        live = theme.LIVE_WINDOW_MAX_S
        if self.model.range_ms is None and change["old"] <= live and change["new"] <= live \
                and self.model.latest:
            self.model.window_s = int(change["new"])
            self._render_charts()      # the buffer already holds every live window
            return
        self.model.select(window_s=change["new"])
        self._wake_loop()

    def _wake_loop(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def acknowledge(self, alert_id: int) -> None:
        """Acknowledge an alarm (as the Ack button does) and redraw at once."""
        self.alarm_list.acknowledge(alert_id)

    def _collect(self, plan: Plan) -> Tick:
        """The live loop's query-thread half: the tick, and the alarm panel's reads."""
        tick = self.data.collect(plan)
        try:
            self._alarm_snapshot = self.alarm_list.collect()
        except Exception as exc:  # no database yet: the page says so elsewhere
            log.debug("alarm panel not read: %s", exc)
        return tick

    def _refresh_alarms(self) -> None:
        """Standing alarms (active, or cleared and not acked): what the query thread read, else
        read now (first paint, `refresh()`)."""
        snapshot, self._alarm_snapshot = getattr(self, "_alarm_snapshot", None), None
        try:
            if snapshot is not None:
                self.alarm_list.show(snapshot)
            else:
                self.alarm_list.refresh()
        except Exception as exc:  # no database yet: the page says so elsewhere
            log.debug("alarm panel not refreshed: %s", exc)

    def _on_alarm_change(self) -> None:
        self.model.alarms = self.data.active_alarms()
        self._render_fleet()
        self._render_status(self.model.latest.get(self.model.asset))

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
                tick = await loop.run_in_executor(self._executor, self._collect, plan)
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
