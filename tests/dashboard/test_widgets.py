"""Widget-level tests: feed a store, run a tick with refresh(), check cards, marks and traitlets."""
from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest

from twinlib.config import THRESHOLDS
from twinlib.dashboard import Dashboard, DashboardData, theme
from twinlib.dashboard.chart import nice_ticks, value_range
from twinlib.dashboard.data import choose_bucket_s
from twinlib.ingest import ingest_frame
from twinlib.store import open_store


class FakeClock:
    """Clocks the test moves by hand: `now` the monotonic one (the loop's rhythm), `ms` the wall
    clock in UTC ms (the data's age, the heartbeat's age)."""

    def __init__(self, ms: int = 0):
        self.now = 1000.0
        self.ms = int(ms)

    def __call__(self):
        return self.now

    def wall(self) -> int:
        return self.ms


def add_reading(store, asset_id, ts, temperature=60.0, vibration=0.3, pressure=40.0):
    frame = pd.DataFrame({"ts": [int(ts)], "asset_id": [asset_id], "temperature": [temperature],
                          "vibration": [vibration], "pressure": [pressure]})
    report = ingest_frame(store, frame, source="test")
    assert report.inserted == 1, report
    return store.max_id()


@pytest.fixture
def dash(store):
    """The dashboard on the fixture fleet, the wall clock a second after its newest reading."""
    newest = max(r.ts for r in store.latest_per_asset().values())
    clock = FakeClock(newest + 1000)
    board = Dashboard(DashboardData(store=store), clock=clock, now_ms=clock.wall)
    board.clock = clock
    board.refresh()
    return board


def _monitor_runs(dash, store):
    """A monitor's fresh heartbeat at the dashboard's wall clock."""
    from dashboard_support import beat

    beat(store, dash.clock.ms)


def test_first_refresh_shows_the_newest_reading_of_the_first_asset(dash, store):
    newest = store.latest_per_asset()["pump-01"]
    assert dash.asset == "pump-01"
    assert dash.state == "live"
    assert dash.cursor == store.max_id()
    assert dash.cards["temperature"].value == pytest.approx(newest.temperature)
    assert dash.cards["vibration"].value == pytest.approx(newest.vibration)
    assert dash.cards["pressure"].value == pytest.approx(newest.pressure)
    assert dash.cards["temperature"].text == f"{newest.temperature:.1f}"
    assert f"{newest.temperature:.1f}" in dash.cards["temperature"]._body.value
    assert "<svg" in dash.cards["temperature"]._body.value          # sparkline drawn
    assert len(dash.cards["temperature"].spark) == theme.SPARK_POINTS
    assert dash.cards["temperature"].slope is not None
    # the table: the five newest readings of the asset, newest first
    rows = store.latest(n=theme.TABLE_ROWS, asset="pump-01")
    assert [r.id for r in dash.table.rows] == [r.id for r in rows]
    assert [t["asset_id"] for t in dash.fleet.assets] == ["pump-01", "pump-02", "pump-03"]


def test_a_tick_reads_only_what_is_new_through_the_cursor(dash, store):
    class CountingStore:
        def __init__(self, inner):
            self.inner, self.calls = inner, []

        def __getattr__(self, name):
            self.calls.append(name)
            return getattr(self.inner, name)

    spy = CountingStore(store)
    dash.data._given_store = spy
    newest = store.latest_per_asset()["pump-01"]
    new_id = add_reading(store, "pump-01", newest.ts + 1000, temperature=71.5)
    tick = dash.refresh()
    assert [r.id for r in tick.readings] == [new_id]
    assert dash.cursor == new_id
    assert dash.cards["temperature"].value == pytest.approx(71.5)
    assert dash.table.rows[0].id == new_id
    # the steady tick touches the readings table only through the id cursor
    reading_queries = {"latest", "window", "latest_per_asset", "downsample", "count"}
    assert "after" in spy.calls and not reading_queries & set(spy.calls)
    # and a second tick with nothing new reads nothing
    assert dash.refresh().readings == []


def test_without_a_monitor_the_page_says_detection_is_not_running(dash, store):
    dash.asset = "pump-03"
    newest = store.latest_per_asset()["pump-03"]
    add_reading(store, "pump-03", newest.ts + 1000, temperature=97.0)     # over both limits
    dash.clock.ms = newest.ts + 2000
    dash.refresh()
    assert dash.status_card.state == "nodetect" and not dash.detecting
    assert dash.status_card.headline == "Detection not running"
    assert "twin run" in dash.status_card.detail
    assert "detection not running" in dash.summary.value
    assert {t["level"] for t in dash.fleet.assets} == {"nodetect"}
    assert all("no detection" in tile.description for tile in dash.fleet.tiles.values())
    # no status invented from the raw value: the card is not coloured; the table marks the cell
    assert 'class="value over"' not in dash.cards["temperature"]._body.value
    assert '<td class="over">97.0</td>' in dash.table._body.value
    # a heartbeat older than a few intervals is no monitor either
    from dashboard_support import beat

    beat(store, dash.clock.ms - 10 * 60_000)
    dash.refresh()
    assert dash.status_card.state == "nodetect" and "10 min old" in dash.status_card.detail


def test_with_a_monitor_tiles_cards_status_and_alarms_tell_one_story(dash, store):
    from twinlib.detect import AlarmEngine, asset_status

    dash.asset = "pump-03"                         # the healthy pump of the fixture fleet
    _monitor_runs(dash, store)
    AlarmEngine(store).process_new()
    dash.refresh()
    assert dash.detecting
    assert dash.status_card.state == "normal"
    assert dash.status_card.headline == "Normal"
    assert '<svg class="twin-icon twin-icon-ok"' in dash.status_card._body.value
    newest = store.latest_per_asset()["pump-03"]
    for k in range(1, 5):                      # critical (> 95 °C) for longer than the hold
        add_reading(store, "pump-03", newest.ts + 1000 * k, temperature=97.0)
    AlarmEngine(store).process_new()
    dash.clock.ms = newest.ts + 5000
    _monitor_runs(dash, store)
    dash.refresh()
    statuses = asset_status(store, now_ms=dash.clock.ms)
    assert statuses["pump-03"]["status"] == "critical"
    tile = {t["asset_id"]: t for t in dash.fleet.assets}["pump-03"]
    assert tile["level"] == "critical"
    assert "no limit crossing ahead" not in tile["forecast"]      # never, for a pump in critical
    assert dash.status_card.state == "alert" and dash.status_card.severity == "critical"
    assert dash.status_card.headline == "Alert"
    assert any("temperature" in m.lower() for m in dash.status_card.messages)
    assert 'class="value over"' in dash.cards["temperature"]._body.value
    assert "alarm-critical" in dash.cards["temperature"]._dom_classes
    assert 'class="value over"' not in dash.cards["pressure"]._body.value
    assert '<td class="over">97.0</td>' in dash.table._body.value
    listed = [a for a in dash.alarm_list.alarms if a["asset_id"] == "pump-03"]
    assert listed and listed[0]["severity"] == "critical"
    critical = sum(1 for v in statuses.values() if v["status"] == "critical")
    assert f'<span class="critical">{critical} critical</span>' in dash.summary.value
    assert [t["asset_id"] for t in dash.fleet.assets if t["level"] == "critical"] == sorted(
        a for a, v in statuses.items() if v["status"] == "critical")
    # no emoji anywhere the dashboard writes its own words
    import re

    emoji = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")
    for text in (dash.status_card._body.value, dash.summary.value, dash.live_badge.value,
                 *[c._body.value for c in dash.cards.values()],
                 *[t.description for t in dash.fleet.tiles.values()]):
        assert not emoji.search(text), text


def test_charts_are_updated_in_place_with_threshold_lines(dash, store):
    chart = dash.charts["temperature"]
    line, figure = chart.line, chart.figure
    newest = store.latest_per_asset()["pump-01"]
    expected = len(store.latest(n=10_000, asset="pump-01", since=newest.ts - dash.window_s * 1000))
    assert chart.points == expected == len(line.y)
    assert list(chart.limit.y) == [THRESHOLDS["temperature"]] * 2
    assert list(dash.charts["vibration"].limit.y) == [THRESHOLDS["vibration"]] * 2
    # warning and critical limits both drawn, in their own colours and dashes
    assert list(chart.limit_marks["critical_high"].y) == [95.0, 95.0]
    assert chart.limit_marks["warning_high"].colors != chart.limit_marks["critical_high"].colors
    assert chart.limit_marks["warning_high"].line_style != chart.limit_marks["critical_high"].line_style
    add_reading(store, "pump-01", newest.ts + 1000, temperature=70.0)
    dash.refresh()
    assert chart.line is line and chart.figure is figure and dash.charts["temperature"] is chart
    assert line.y[-1] == pytest.approx(70.0)
    assert line.x[-1] == np.datetime64(newest.ts + 1000, "ms")
    # each sensor has its own y scale, and the threshold stays in view
    scales = {id(c.y_scale) for c in dash.charts.values()}
    assert len(scales) == 3
    assert chart.y_scale.min < THRESHOLDS["temperature"] < chart.y_scale.max
    assert dash.charts["vibration"].y_scale.max < 2.0      # not flattened by pressure
    assert chart.x_scale.max == np.datetime64(newest.ts + 1000, "ms")
    axis = chart.figure.axes[0]
    assert axis.tick_format == "%H:%M:%S"


def test_long_windows_draw_downsampled_buckets_with_a_band(dash, store):
    dash.window_s = 6 * 3600
    tick = dash.refresh()
    assert tick.reloaded and tick.bucket_s == choose_bucket_s(6 * 3600) == 120
    newest = store.latest_per_asset()["pump-01"]
    start = newest.ts - 6 * 3600 * 1000
    buckets = store.downsample(120, start=start - start % 120_000, asset="pump-01")
    chart = dash.charts["pressure"]
    assert chart.points == len(buckets) == len(chart.band.y[0])
    assert chart.line.y == pytest.approx(buckets["pressure_mean"].to_numpy())
    assert chart.band.y[0] == pytest.approx(buckets["pressure_min"].to_numpy())
    # back to a live window: raw readings again, the band emptied
    dash.window_s = 60
    dash.refresh()
    assert len(chart.band.x) == 0
    assert chart.points == len(store.latest(n=1000, asset="pump-01", since=newest.ts - 60_000))


def test_the_window_picker_and_the_window_traitlet_agree(dash):
    dash.window_picker.value = 900
    assert dash.window_s == 900
    dash.window_s = 60
    assert dash.window_picker.value == 60
    assert [v for _, v in theme.WINDOWS][0] == 60 and [v for _, v in theme.WINDOWS][-1] == 7 * 86400


def test_clicking_a_fleet_tile_shows_that_asset(dash, store):
    dash.fleet.tiles["pump-02"].click()
    assert dash.asset == "pump-02"
    dash.refresh()
    newest = store.latest_per_asset()["pump-02"]
    assert dash.cards["pressure"].value == pytest.approx(newest.pressure)
    assert {r.asset_id for r in dash.table.rows} == {"pump-02"}
    assert "selected" in dash.fleet.tiles["pump-02"]._dom_classes
    assert "selected" not in dash.fleet.tiles["pump-01"]._dom_classes


def test_stale_is_the_age_of_the_newest_reading_not_the_time_since_page_load(dash, store):
    dash.asset = "pump-03"
    newest = max(r.ts for r in store.latest_per_asset().values())
    dash.clock.ms = newest + int(theme.STALE_AFTER_S * 1000) - 1000
    dash.clock.now += 3600                       # the page has been open an hour: irrelevant
    dash.refresh()
    assert dash.state == "live" and not dash.stale
    dash.clock.ms = newest + 12 * 60_000         # the data are 12 minutes old
    dash.refresh()
    assert dash.state == "stale" and dash.stale
    assert "DATA STALE · newest reading 12 min old" in dash.live_badge.value
    # a page opened just now on old data says so at once (the first tick, no waiting)
    fresh = Dashboard(DashboardData(store=store), clock=FakeClock(), now_ms=lambda: newest + 12 * 60_000)
    fresh.refresh()
    assert fresh.state == "stale" and "12 min old" in fresh.live_badge.value
    add_reading(store, "pump-03", dash.clock.ms - 500)
    dash.refresh()
    assert dash.state == "live" and "LIVE" in dash.live_badge.value


def test_an_asset_reporting_every_minute_is_not_stale_between_readings(tmp_db):
    store = open_store(tmp_db, create=True)
    t0 = 1_770_681_600_000
    for k in range(10):
        add_reading(store, "slow-01", t0 + k * 60_000)
    newest = t0 + 9 * 60_000
    clock = FakeClock(newest + 45_000)
    board = Dashboard(DashboardData(store=store), clock=clock, now_ms=clock.wall)
    board.refresh()
    assert board.state == "live"                   # 45 s: less than 5 intervals of a minute
    clock.ms = newest + 6 * 60_000
    board.refresh()
    assert board.state == "stale"
    store.close()


def test_active_alarms_are_listed_and_acknowledged_from_the_button(dash, store):
    alert_id = store.open_alert("pump-02", "temperature_high", "temperature", "critical",
                                "Temperature 91.0 °C above 85 °C", 1_770_681_600_000, 91.0)
    _monitor_runs(dash, store)
    dash.refresh()
    assert [a["id"] for a in dash.alarm_list.alarms] == [alert_id]
    assert "Temperature 91.0" in dash.alarm_list._rows.children[0].children[0].value
    assert "critical" in [t["level"] for t in dash.fleet.assets if t["asset_id"] == "pump-02"]
    dash.alarm_list.buttons[alert_id].click()
    row = store.get_alert(alert_id)
    assert row["acked"] == 1 and row["acked_by"] == theme.ACK_BY
    assert alert_id not in dash.alarm_list.buttons            # no button for an acked alarm
    assert "acked by dashboard" in dash.alarm_list._rows.children[0].children[0].value


def test_the_dashboard_never_writes_readings(dash, store):
    def deny_reading_writes(action, table, *_):
        writes = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
        if action in writes and table == "readings":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    before = store.count()
    alert_id = store.open_alert("pump-01", "vibration_high", "vibration", "warning",
                                "Vibration high", 1_770_681_600_000, 0.9)
    store.conn.set_authorizer(deny_reading_writes)
    try:
        for window in (60, 3600, 86400, 300):
            dash.window_s = window
            dash.refresh()
        dash.fleet.tiles["pump-03"].click()
        dash.refresh()
        dash.alarm_list.buttons[alert_id].click()
        assert dash.message == ""
    finally:
        store.conn.set_authorizer(None)
    assert store.count() == before
    assert store.get_alert(alert_id)["acked"] == 1


def test_a_missing_database_is_reported_and_picked_up_when_it_appears(tmp_path):
    path = tmp_path / "later.db"
    board = Dashboard(DashboardData(path), clock=FakeClock(), now_ms=lambda: 1_770_681_601_000)
    tick = board.refresh()
    assert tick.error and board.state == "nodata"
    assert "no database" in board.message and str(path) in board.message
    assert board.status_card.state == "nodata"
    assert not path.exists()                       # the dashboard creates nothing
    store = open_store(path, create=True)
    add_reading(store, "pump-07", 1_770_681_600_000, temperature=55.0)
    board.refresh()
    assert board.state == "live" and board.asset == "pump-07" and board.message == ""
    assert board.cards["temperature"].value == pytest.approx(55.0)
    board.data.close()
    store.close()


def test_an_empty_database_waits_for_the_first_reading(tmp_db):
    store = open_store(tmp_db, create=True)
    board = Dashboard(DashboardData(store=store), clock=FakeClock(), now_ms=lambda: 1_770_681_601_000)
    board.refresh()
    assert board.state == "nodata" and "NO DATA" in board.live_badge.value
    assert all(card.text == "—" for card in board.cards.values())
    add_reading(store, "pump-01", 1_770_681_600_000)
    board.refresh()
    assert board.state == "live" and board.cards["vibration"].value == pytest.approx(0.3)
    store.close()


def test_fleet_tiles_carry_status_and_forecast(dash, store):
    from twinlib.dashboard.status import describe_forecast
    from twinlib.detect import asset_status
    from twinlib.models.forecast import forecast_asset

    _monitor_runs(dash, store)
    dash.refresh()
    statuses = asset_status(store, now_ms=dash.clock.ms)
    for tile in dash.fleet.assets:
        expected = describe_forecast(forecast_asset(store, tile["asset_id"]))
        assert tile["forecast"] == expected
        word = statuses[tile["asset_id"]]["status"]
        assert tile["level"] == {"normal": "ok"}.get(word, word)
        assert dash.fleet.tiles[tile["asset_id"]].description.splitlines()[2] == expected


def test_trend_slope_and_helpers():
    from twinlib.dashboard.cards import trend_per_minute

    ts = np.arange(0, 60_000, 1000)
    assert trend_per_minute(ts, 2.0 + ts / 60_000 * 3.0) == pytest.approx(3.0)
    assert trend_per_minute([0, 1000], [1.0, 2.0]) is None
    assert nice_ticks(55.9, 88.1) == [60.0, 70.0, 80.0]
    lo, hi = value_range([60.0, 61.0], 85.0)
    assert lo < 60.0 and hi > 85.0
    assert choose_bucket_s(300) == 1 and choose_bucket_s(6 * 3600) == 120
    assert choose_bucket_s(7 * 86400) == 3600
    assert all(choose_bucket_s(w) * theme.CHART_POINTS >= w for _, w in theme.WINDOWS)
    assert not math.isnan(value_range([], None)[0])


def test_a_tick_read_for_another_asset_is_dropped(dash, store):
    plan = dash._plan()
    newest = store.latest_per_asset()["pump-01"]
    add_reading(store, "pump-01", newest.ts + 1000, temperature=66.6)
    tick = dash.data.collect(plan)
    dash.asset = "pump-02"                 # the user clicks while the queries run
    cursor = dash.cursor
    dash._apply(tick)
    assert dash.cursor == cursor           # nothing of the old asset's tick was applied
    dash.refresh()
    assert dash.asset == "pump-02" and {r.asset_id for r in dash.table.rows} == {"pump-02"}
    assert dash.cursor == store.max_id()


def test_a_huge_backlog_reloads_instead_of_replaying_row_by_row(dash, store, monkeypatch):
    monkeypatch.setattr(theme, "CURSOR_PAGE", 5)
    monkeypatch.setattr(theme, "CURSOR_MAX_PAGES", 2)
    newest = store.latest_per_asset()["pump-01"]
    for k in range(1, 16):
        add_reading(store, "pump-01", newest.ts + 1000 * k, temperature=60.0 + k)
    tick = dash.refresh()
    assert tick.reloaded and tick.readings == []
    assert dash.cursor == store.max_id()
    assert dash.cards["temperature"].value == pytest.approx(75.0)


def test_a_late_reading_is_drawn_in_time_order(dash, store):
    newest = store.latest_per_asset()["pump-01"]
    add_reading(store, "pump-01", newest.ts + 2000, temperature=70.0)
    dash.refresh()
    add_reading(store, "pump-01", newest.ts + 1000, temperature=71.0)     # arrives late
    dash.refresh()
    x = dash.charts["temperature"].line.x
    assert (np.diff(x.astype("int64")) > 0).all()
    assert dash.cards["temperature"].value == pytest.approx(70.0)      # still the newest in time


def test_a_large_fleet_gets_one_line_tiles_and_a_summary(tmp_db):
    store = open_store(tmp_db, create=True)
    for k in range(8):
        add_reading(store, f"motor-{k:02d}", 1_770_681_600_000 + k)
    board = Dashboard(DashboardData(store=store), clock=FakeClock())
    board.refresh()
    assert "compact" in board.fleet._dom_classes
    assert all("\n" not in tile.description for tile in board.fleet.tiles.values())
    assert "<b>8</b> assets" in board.summary.value
    store.close()


def test_a_light_first_paint_shows_readings_and_the_next_tick_adds_the_checks(store):
    board = Dashboard(DashboardData(store=store), clock=FakeClock())
    board.refresh(light=True)
    newest = store.latest_per_asset()["pump-01"]
    assert board.cards["temperature"].value == pytest.approx(newest.temperature)
    assert board.status_card.state == "checking"
    assert all(t["forecast"] == "forecast pending" for t in board.fleet.assets)
    board.refresh()                                   # the live loop's first tick
    assert board.status_card.state == "nodetect"      # (no monitor ever ran on this store)
    assert board.model.statuses is not None and not board.model.statuses_pending
    assert all(t["forecast"] != "forecast pending" for t in board.fleet.assets)


def test_the_light_first_paint_does_not_import_the_detection_wing(store):
    import subprocess
    import sys

    code = ("import sys; from twinlib.dashboard import Dashboard, DashboardData; "
            f"d = Dashboard(DashboardData({str(store.path)!r})); d.refresh(light=True); "
            "assert d.cards['temperature'].value is not None; "
            "print(sorted(m for m in sys.modules if m.startswith(('twinlib.detect', 'twinlib.models', 'sklearn'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_time_axis_names_the_day_only_for_windows_longer_than_a_day(dash):
    axis = dash.charts["temperature"].x_axis
    assert axis.tick_format == "%H:%M:%S"
    dash.window_s = 7 * 86400
    dash.refresh()
    assert axis.tick_format == theme.DAY_TIME_FORMAT
    dash.window_s = 86400
    dash.refresh()
    assert axis.tick_format == "%H:%M:%S"


def test_a_file_that_is_not_a_database_is_reported_not_raised(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    board = Dashboard(DashboardData(path), clock=FakeClock())
    tick = board.refresh()
    assert tick.error and board.state == "nodata"
    assert str(path) in board.message
    assert path.read_bytes() == b"this is not sqlite" * 100      # left untouched


def test_gaps_in_the_data_break_the_line(dash, store):
    dash.window_s = 900
    newest = store.latest_per_asset()["pump-01"]
    # five minutes without a reading, then the asset reports again
    add_reading(store, "pump-01", newest.ts + 300_000, temperature=61.0)
    add_reading(store, "pump-01", newest.ts + 301_000, temperature=61.5)
    dash.refresh()
    chart = dash.charts["temperature"]
    y = np.asarray(chart.line.y, dtype="float64")
    x = np.asarray(chart.line.x).astype("datetime64[ms]").astype("int64")
    assert chart.gaps == 1 and np.isnan(y).sum() == 1
    at = int(np.flatnonzero(np.isnan(y))[0])
    assert x[at - 1] == newest.ts and x[at + 1] == newest.ts + 300_000     # between the two
    # a steady series has no break
    assert dash.charts["vibration"].gaps == 1 and dash.charts["pressure"].gaps == 1
    from twinlib.dashboard.clock import with_gaps

    ts, v = with_gaps(np.arange(0, 10_000, 1000), np.ones(10))
    assert len(ts) == 10 and not np.isnan(v).any()


def test_downsampled_buckets_break_over_missing_buckets(dash, store):
    from twinlib.dashboard.clock import with_gaps

    ts = np.array([0, 120_000, 240_000, 960_000, 1_080_000])
    out_ts, mean, lo, hi = with_gaps(ts, [1, 2, 3, 4, 5], [0, 1, 2, 3, 4], [2, 3, 4, 5, 6],
                                     cadence_ms=120_000)
    assert np.isnan(mean).sum() == np.isnan(lo).sum() == np.isnan(hi).sum() == 1
    assert out_ts[3] == 600_000


def test_times_are_shown_in_the_chosen_zone(store, tmp_path):
    from twinlib.config import get_settings

    settings = get_settings(env={"TWIN_TIMEZONE": "Europe/Berlin"},
                            settings_file=tmp_path / "none.toml")
    assert settings.dashboard_timezone == "Europe/Berlin"
    newest = store.latest_per_asset()["pump-01"]            # 2026-02-10: Berlin is UTC+1
    board = Dashboard(DashboardData(store=store), settings=settings, clock=FakeClock(),
                      now_ms=lambda: newest.ts + 1000)
    board.refresh()
    from twinlib.timeutil import format_ts

    utc = format_ts(newest.ts)
    hour = (int(utc[11:13]) + 1) % 24
    assert "<th>Time (Europe/Berlin)</th>" in board.table._body.value
    assert f"{hour:02d}{utc[13:19]}" in board.table._body.value
    assert f"LIVE · newest {hour:02d}{utc[13:19]} CET" in board.live_badge.value
    # the chart's x axis: bqplot formats in UTC, so the points carry the zone's offset
    x = np.asarray(board.charts["temperature"].line.x).astype("datetime64[ms]").astype("int64")
    assert x[-1] == newest.ts + 3_600_000
    # the settings file names the zone too; a zone nobody knows is a clear error
    (tmp_path / "twin.toml").write_text('[dashboard]\ntimezone = "America/New_York"\n')
    assert get_settings(env={}, settings_file=tmp_path / "twin.toml").dashboard_timezone == "America/New_York"
    from twinlib.config import SettingsError

    with pytest.raises(SettingsError, match="unknown time zone 'Mars/Olympus'"):
        get_settings(env={"TWIN_TIMEZONE": "Mars/Olympus"}, settings_file=tmp_path / "none.toml")
    assert get_settings(env={}, settings_file=tmp_path / "none.toml").dashboard_timezone == "UTC"


def test_a_custom_range_shows_that_span_and_a_preset_returns_to_live(dash, store):
    import datetime as dt

    newest = store.latest_per_asset()["pump-01"]
    start, end = newest.ts - 2 * 3600_000, newest.ts - 3600_000        # an hour, an hour ago
    dash.range_toggle.value = True
    assert dash.range_box.layout.display == "" and dash.range_to.value is not None
    assert dash.apply_range(start, end)
    dash.refresh()
    chart = dash.charts["temperature"]
    assert dash.model.range_ms == (start, end) and dash.window_picker.value is None
    assert chart.x_scale.min == np.datetime64(start, "ms") and chart.x_scale.max == np.datetime64(end, "ms")
    bucket = choose_bucket_s(3600)
    expected = store.downsample(bucket, start=start - start % (bucket * 1000), end=end, asset="pump-01")
    assert chart.points == len(expected) > 0
    x = np.asarray(chart.line.x).astype("datetime64[ms]").astype("int64")
    assert x.max() <= end + bucket * 1000
    # the pickers hold wall times in the dashboard's zone (UTC here); "to" before "from": refused
    assert not dash.apply_range(dt.datetime(2026, 2, 10, 2), dt.datetime(2026, 2, 10, 1))
    assert "after" in dash.range_note.value and dash.model.range_ms == (start, end)
    assert dash.apply_range(dt.datetime(2026, 2, 10, 1), dt.datetime(2026, 2, 10, 2))
    assert dash.model.range_ms == (1_770_685_200_000, 1_770_688_800_000)
    # a preset window replaces the range
    dash.window_picker.value = 300
    dash.refresh()
    assert dash.model.range_ms is None and dash.window_s == 300
    assert dash.range_toggle.value is False
    assert chart.x_scale.max == np.datetime64(store.latest_per_asset()["pump-01"].ts, "ms")
