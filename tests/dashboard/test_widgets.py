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
    """A monotonic clock the test moves by hand (the stale state depends on elapsed time)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def add_reading(store, asset_id, ts, temperature=60.0, vibration=0.3, pressure=40.0):
    frame = pd.DataFrame({"ts": [int(ts)], "asset_id": [asset_id], "temperature": [temperature],
                          "vibration": [vibration], "pressure": [pressure]})
    report = ingest_frame(store, frame, source="test")
    assert report.inserted == 1, report
    return store.max_id()


@pytest.fixture
def dash(store):
    clock = FakeClock()
    board = Dashboard(DashboardData(store=store), clock=clock)
    board.clock = clock
    board.refresh()
    return board


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


def test_a_reading_over_85_degrees_turns_the_status_card_to_alert(dash, store):
    dash.asset = "pump-03"                         # the healthy pump of the fixture fleet
    dash.refresh()
    assert dash.status_card.state == "normal"
    assert dash.status_card.headline == "✅ Normal"
    newest = store.latest_per_asset()["pump-03"]
    add_reading(store, "pump-03", newest.ts + 1000, temperature=92.0)
    dash.refresh()
    assert dash.status_card.state == "alert"
    assert dash.status_card.headline == "⚠️ Alert"
    assert any("temperature" in m.lower() for m in dash.status_card.messages)
    assert 'class="value over"' in dash.cards["temperature"]._body.value
    assert '<td class="over">92.0</td>' in dash.table._body.value


def test_charts_are_updated_in_place_with_threshold_lines(dash, store):
    chart = dash.charts["temperature"]
    line, figure = chart.line, chart.figure
    newest = store.latest_per_asset()["pump-01"]
    expected = len(store.latest(n=10_000, asset="pump-01", since=newest.ts - dash.window_s * 1000))
    assert chart.points == expected == len(line.y)
    assert list(chart.limit.y) == [THRESHOLDS["temperature"]] * 2
    assert list(dash.charts["vibration"].limit.y) == [THRESHOLDS["vibration"]] * 2
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


def test_no_new_reading_for_a_while_shows_data_stale(dash, store):
    dash.asset = "pump-03"
    dash.clock.now += theme.STALE_AFTER_S - 1
    dash.refresh()
    assert dash.state == "live" and not dash.stale
    dash.clock.now += 2
    dash.refresh()
    assert dash.state == "stale" and dash.stale
    assert "DATA STALE" in dash.live_badge.value
    assert dash.status_card.state == "stale"
    newest = store.latest_per_asset()["pump-03"]
    add_reading(store, "pump-03", newest.ts + 1000)
    dash.refresh()
    assert dash.state == "live" and "LIVE" in dash.live_badge.value
    assert dash.status_card.state == "normal"


def test_active_alarms_are_listed_and_acknowledged_from_the_button(dash, store):
    alert_id = store.open_alert("pump-02", "temperature_high", "temperature", "critical",
                                "Temperature 91.0 °C above 85 °C", 1_770_681_600_000, 91.0)
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
    board = Dashboard(DashboardData(path), clock=FakeClock())
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
    board = Dashboard(DashboardData(store=store), clock=FakeClock())
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

    statuses = asset_status(store)
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
    assert all(t["forecast"] == "⏱ forecast pending" for t in board.fleet.assets)
    board.refresh()                                   # the live loop's first tick
    assert board.status_card.state in ("normal", "alert")
    assert board.model.statuses is not None and not board.model.statuses_pending
    assert all(t["forecast"] != "⏱ forecast pending" for t in board.fleet.assets)


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
