"""The dashboard's only door to the store: what one refresh tick reads, and the one write (ack).

`DashboardData` keeps one store connection per thread (SQLite connections belong to the thread
that opened them), so the live loop can run its queries on a worker thread while button handlers
acknowledge alarms on the kernel's main thread. Every read goes through the store's indexed
methods — `after(cursor)`, `latest`, `latest_per_asset`, `downsample`, `list_alerts` — so the cost
of a tick follows the number of new readings, not the size of the history.

Statuses and forecasts come from the same calls as the API's `/assets` and
`/assets/<id>/forecast`: `twinlib.detect.asset_status(store, now_ms=<now>, rules=<settings
file>)` and
`twinlib.models.forecast.forecast_asset(store, asset, now_ms=<its newest>, thresholds=<its
thresholds>)`. The limits drawn are `twinlib.detect.limits_in_force(store, asset, <rule book of the settings>)`,
the call behind `GET /assets/<id>`'s `limits_in_force`, read for the shown asset with the
statuses. The wings are imported directly, inside the methods that use them — importing them
costs about a second, which a light first paint leaves to the live loop's first tick. Each asset's
kind and location are read once (`store.asset`) when it first appears. The monitor's heartbeat
(`twinlib.monitor.read_heartbeat`) is read every full tick: it says whether those statuses are
current (a monitor runs detection) or not. The alarms listed are the active ones and the cleared
ones nobody has acknowledged yet (ISA-18.2: an alarm stays until acknowledged).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from twinlib.config import db_location
from twinlib.dashboard import theme

__all__ = ["DashboardData", "Plan", "Tick", "StoreUnavailable", "choose_bucket_s", "alarm_key"]

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The database cannot be opened (missing file, or a path that is not a twinlib store)."""


def choose_bucket_s(window_s: int, points: int = theme.CHART_POINTS) -> int:
    """Return the smallest round bucket (seconds) that draws `window_s` in at most `points` buckets."""
    wanted = max(1, -(-int(window_s) // int(points)))
    for bucket in theme.NICE_BUCKETS_S:
        if bucket >= wanted:
            return bucket
    return theme.NICE_BUCKETS_S[-1]


def alarm_key(alarms) -> tuple:
    """What identifies a set of listed alarms for display: ids, severities, states, ack flags."""
    return tuple(sorted((a["id"], a.get("severity"), a.get("state"), bool(a.get("acked")))
                        for a in alarms))


@dataclass(frozen=True)
class Plan:
    """What one tick must read, decided on the loop thread before the queries run elsewhere."""

    generation: int
    cursor: int | None          # None: (re)load everything for `asset`
    asset: str
    window_s: int
    history_since: int | None   # downsample buckets from this ms on (None: none needed)
    want_statuses: bool
    want_forecasts: bool
    assets: tuple = ()          # assets known so far (forecasts are made for these)
    alarm_key: tuple = ()       # the active alarms shown now (a change re-reads the statuses)
    detect: bool = True         # False: a light first paint, without the detection wing
    signals: tuple = ()         # SignalViews of the shown asset (its kind's measured signals)
    known: frozenset = frozenset()   # assets whose kind and location are known already
    forecastable: tuple | None = None  # assets whose kind the forecasts handle (None: all)
    range_ms: tuple | None = None    # a custom (start, end) instead of the window
    now_ms: int = 0             # the wall clock when planned (UTC ms; 0: the store's clock)
    want_limits: bool = False   # read the limits in force for the shown asset


@dataclass
class Tick:
    """What one tick read; applied to the widgets on the loop thread."""

    plan: Plan
    asset: str = ""                                    # the asset shown (chosen on reload if unset)
    cursor: int = 0
    reloaded: bool = False
    readings: list = field(default_factory=list)       # new since the cursor (ascending id)
    backfill: list = field(default_factory=list)       # on reload: the selected asset's recent readings
    latest: dict = field(default_factory=dict)         # on reload: asset_id -> newest Reading
    alarms: list = field(default_factory=list)         # active + cleared-unacked alerts, newest first
    statuses: dict | None = None                       # asset_id -> status (None: not read this tick)
    history: pd.DataFrame | None = None                # downsample buckets (None: not read this tick)
    bucket_s: int = 0
    forecasts: dict | None = None                      # asset_id -> forecast list
    heartbeat: dict | None = None                      # the monitor's last heartbeat (if detect)
    meta: dict = field(default_factory=dict)           # asset_id -> {"kind", "location"} newly read
    limits: dict | None = None                         # asset_id -> limits_in_force (if read)
    error: str = ""


class DashboardData:
    """Reads what the dashboard shows from one SQLite store, one connection per thread."""

    def __init__(self, db_path: str | Path | None = None, *, store: Any = None, settings: Any = None):
        if db_path is None and store is None:
            raise ValueError("DashboardData needs a db_path or a store")
        if db_path is None:
            db_path = getattr(store, "path", None)
        self.db_path = db_location(db_path) if db_path is not None else None
        self._local = threading.local()
        self._given_store = store
        self.settings = settings          # twinlib.config.Settings (rules, thresholds) or None
        self._given_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._opened: list = []

    # -- connections -----------------------------------------------------------------------
    @property
    def store(self):
        """The store for the calling thread (opened on first use)."""
        if self._given_store is not None and (
            self.db_path is None or threading.get_ident() == self._given_thread
        ):
            return self._given_store
        store = getattr(self._local, "store", None)
        if store is None:
            from twinlib.store import StoreError, StoreMissingError, open_store

            try:
                store = open_store(self.db_path, create=False)
            except StoreMissingError as exc:
                raise StoreUnavailable(f"no database at {self.db_path}") from exc
            except StoreError as exc:           # not a twinlib database, or unreadable
                raise StoreUnavailable(str(exc)) from exc
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    def close(self) -> None:
        """Close the connections this object opened (not a store it was given)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            close = getattr(store, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # a connection of a finished thread: nothing left to do
                    log.debug("closing a dashboard store failed", exc_info=True)
        self._local = threading.local()

    # -- reads -----------------------------------------------------------------------------
    def collect(self, plan: Plan) -> Tick:
        """Run the queries one tick needs (called on the worker thread by the live loop)."""
        tick = Tick(plan=plan, asset=plan.asset)
        try:
            store = self.store
            if plan.cursor is None or not self._read_new(store, plan, tick):
                self._reload(store, plan, tick)
            seen = set(tick.latest) | {r.asset_id for r in tick.readings}
            for asset_id in sorted(seen - set(plan.known)):
                tick.meta[asset_id] = self.asset_meta(store, asset_id)
            tick.alarms = self.listed_alarms(store)
            if plan.detect and alarm_key(tick.alarms) != plan.alarm_key:
                # Statuses summarise the alarms: when those changed, so did they.
                tick.plan = plan = replace(plan, want_statuses=True)
            if plan.want_statuses:
                tick.statuses = self.statuses(store, now_ms=plan.now_ms or None)
            if plan.detect:
                tick.heartbeat = self.heartbeat(store)
            if plan.want_limits and tick.asset:
                tick.limits = {tick.asset: self.limits(store, tick.asset)}
            since, end = plan.history_since, None
            span_s = plan.window_s
            if plan.range_ms is not None:
                span_s = max(1, (plan.range_ms[1] - plan.range_ms[0]) // 1000)
                end = plan.range_ms[1]
                if tick.reloaded and tick.asset:
                    since = plan.range_ms[0]
            elif tick.reloaded and plan.window_s > theme.LIVE_WINDOW_MAX_S and tick.asset:
                since = tick.latest[tick.asset].ts - plan.window_s * 1000
            if since is not None and tick.asset:
                tick.bucket_s = choose_bucket_s(span_s)
                # Start on a bucket boundary so the first bucket is whole, not a sliver.
                since -= since % (tick.bucket_s * 1000)
                tick.history = store.downsample(tick.bucket_s, start=since, end=end, asset=tick.asset)
            if plan.want_forecasts:
                assets = list(plan.assets) or None
                if plan.forecastable is not None:
                    assets = [a for a in (assets or []) if a in plan.forecastable]
                else:   # the first tick: the kinds are read just now (the forecasts model pumps)
                    assets = [a for a in (assets or sorted(tick.latest)) if self._pump(a, tick)]
                tick.forecasts = self.forecasts(store, assets)
        except StoreUnavailable as exc:
            tick.error = str(exc)
        return tick

    def _reload(self, store, plan: Plan, tick: Tick) -> None:
        """Read the whole current picture: cursor, newest reading per asset, recent history."""
        tick.reloaded = True
        tick.readings = []
        tick.cursor = int(store.max_id() or 0)
        tick.latest = dict(store.latest_per_asset())
        if plan.asset not in tick.latest:
            tick.asset = sorted(tick.latest)[0] if tick.latest else ""
        if tick.asset:
            since = tick.latest[tick.asset].ts - theme.LIVE_WINDOW_MAX_S * 1000
            rows = store.latest(n=theme.BACKFILL_MAX_ROWS, asset=tick.asset, since=since)
            # Rows committed after max_id() was read arrive through the cursor next tick.
            tick.backfill = [r for r in reversed(rows) if r.id <= tick.cursor]

    def _read_new(self, store, plan: Plan, tick: Tick) -> bool:
        """Read the readings that arrived since the cursor; False when the backlog is too big."""
        cursor = plan.cursor
        for _ in range(theme.CURSOR_MAX_PAGES):
            page = store.after(cursor, limit=theme.CURSOR_PAGE)
            tick.readings.extend(page)
            if page:
                cursor = page[-1].id
            if len(page) < theme.CURSOR_PAGE:
                tick.cursor = cursor
                return True
        # A backlog this large (a bulk import landed, or the kernel was suspended): drawing it row
        # by row would stall the page, so the caller reloads the current picture instead.
        return False

    @staticmethod
    def asset_meta(store, asset_id: str) -> dict:
        """An asset's stored kind and location (``{"kind": None, "location": None}`` if unknown)."""
        meta = store.asset(asset_id) if hasattr(store, "asset") else None
        meta = meta or {}
        return {"kind": meta.get("kind"), "location": meta.get("location")}

    def statuses(self, store=None, now_ms: int | None = None) -> dict:
        """Each asset's status: `twinlib.detect.asset_status`, called as the API calls it
        (`now_ms`: the wall clock, so a silent asset is stale)."""
        from twinlib.detect import asset_status
        from twinlib.timeutil import now_ms as wall_ms

        rules = self.settings.file if self.settings is not None else None
        return asset_status(store if store is not None else self.store,
                            now_ms=now_ms if now_ms is not None else wall_ms(), rules=rules)

    def _pump(self, asset_id: str, tick: Tick) -> bool:
        from twinlib.dashboard.signals import resolve_kind

        stored = (tick.meta.get(asset_id) or {}).get("kind") or \
            getattr(tick.latest.get(asset_id), "kind", None)
        return resolve_kind(asset_id, stored, self.settings).physics == "pump"

    def limits(self, store, asset_id: str) -> dict:
        """The limits the alarm engine applies to the asset, per measured signal and side, with
        their source: `twinlib.detect.limits_in_force`, the call behind the API's
        `GET /assets/<id>` (`limits_in_force` of each signal)."""
        from twinlib.detect import RuleBook, limits_in_force

        book = getattr(self, "_book", None)
        if book is None:      # built once: it checks the whole settings file
            book = self._book = RuleBook(settings=self.settings) if self.settings is not None \
                else RuleBook({})
        return limits_in_force(store if store is not None else self.store, asset_id, book)

    @staticmethod
    def heartbeat(store) -> dict | None:
        """The monitor's last heartbeat in this store (None: no monitor ever ran on it)."""
        from twinlib.monitor import read_heartbeat

        return read_heartbeat(store)

    @staticmethod
    def listed_alarms(store) -> list[dict]:
        """The alarms the panel lists: every active one, and cleared ones not yet acknowledged
        (an alarm that raised and cleared before anyone looked stays until acknowledged);
        newest first."""
        rows = store.list_alerts(state="active", limit=100)
        rows += store.list_alerts(state="cleared", acked=False, limit=100)
        return sorted(rows, key=lambda a: -(a.get("started_at") or 0))

    def forecasts(self, store=None, assets: list | None = None) -> dict:
        """Each asset's time-to-threshold forecasts (a list of per-signal dicts, `[]` when
        nothing is degrading), from `forecast_asset` called as the API's `/forecast` calls it."""
        from twinlib.models.forecast import forecast_asset

        store = store if store is not None else self.store
        if assets is None:
            assets = sorted(store.latest_per_asset())
        result = {}
        for asset_id in assets:
            try:
                as_of = store.newest_ts(asset_id)
                thresholds = self.settings.thresholds(asset_id) if self.settings is not None else None
                result[asset_id] = [] if as_of is None else list(
                    forecast_asset(store, asset_id, now_ms=as_of, thresholds=thresholds))
            except Exception:
                # One asset's failed forecast must not blank the fleet: its tile says so.
                log.warning("forecast for %s failed", asset_id, exc_info=True)
        return result

    def active_alarms(self) -> list[dict]:
        """The alarms listed on the page (see `listed_alarms`), newest first."""
        return self.listed_alarms(self.store)

    def acknowledge(self, alert_id: int, by: str = theme.ACK_BY) -> dict:
        """Acknowledge one alert: the dashboard's only write."""
        return self.store.acknowledge_alert(int(alert_id), by)
