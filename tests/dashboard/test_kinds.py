"""The dashboard follows the selected asset's kind: a pump, a SKAB test bed and a kind defined in a
settings file written by the test, on one page — cards, charts, limit lines, table columns, units,
status messages — and fleet tiles grouped by location."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.config import get_settings
from twinlib.dashboard import Dashboard, DashboardData, theme
from twinlib.dashboard.state import DashboardState
from twinlib.ingest import ingest_frame
from twinlib.kinds import builtin_kind
from twinlib.store import open_store

SETTINGS = """
[kinds.compressor]
description = "Screw compressor (test)"

[kinds.compressor.signals.discharge_temperature]
unit = "°C"
valid = [-40, 250]
high = [95, 110]

[kinds.compressor.signals.discharge_pressure]
unit = "bar"
valid = [0, 20]
high = [10.5, 11.5]
low = [6.0, 5.0]

[kinds.compressor.signals.motor_current]
unit = "A"
valid = [0, 400]
high = { warning = 180, critical = 210 }

[kinds.compressor.signals.load]
role = "state"
unit = "%"
valid = [0, 100]

[assets."comp-01"]
kind = "compressor"
location = "plant-2/air"

[assets."skab-1"]
location = "lab/testbed"
"""

T0 = 1_700_000_000_000
N = 120


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _frame(asset_id: str, columns: dict) -> pd.DataFrame:
    return pd.DataFrame({"ts": T0 + np.arange(N) * 1000, "asset_id": asset_id, **columns})


@pytest.fixture
def mixed(tmp_path):
    """A store with a pump (location in the store), a SKAB test bed and a compressor whose kind
    and location come from the settings file."""
    path = tmp_path / "twin.toml"
    path.write_text(SETTINGS, encoding="utf-8")
    settings = get_settings(env={}, settings_file=path, db_path=tmp_path / "fleet.db")
    store = open_store(settings.db_path, create=True)
    rng = np.random.default_rng(7)
    pump = builtin_kind("pump")
    report = ingest_frame(store, _frame("pump-01", {
        "temperature": 60 + rng.normal(0, 0.5, N), "vibration": 0.3 + rng.normal(0, 0.01, N),
        "pressure": 40 + rng.normal(0, 0.5, N)}), source="test", kind=pump, location="plant-1/line-1")
    assert report.inserted == N
    skab = builtin_kind("skab-testbed")
    skab_values = {"Accelerometer1RMS": 0.21, "Accelerometer2RMS": 0.26, "Current": 2.1,
                   "Pressure": 0.25, "Temperature": 70.1, "Thermocouple": 26.4, "Voltage": 229.5,
                   "Volume_Flow_RateRMS": 32.0}
    report = ingest_frame(store, _frame("skab-1", {k: v + rng.normal(0, abs(v) * 0.01, N)
                                                  for k, v in skab_values.items()}),
                          source="test", kind=skab)
    assert report.inserted == N
    compressor = settings.kind("compressor")
    # The pressure sinks through its low warning (6.0 bar) at the end.
    pressure = np.linspace(7.5, 5.8, N)
    report = ingest_frame(store, _frame("comp-01", {
        "discharge_temperature": 80 + rng.normal(0, 0.3, N), "discharge_pressure": pressure,
        "motor_current": 150 + rng.normal(0, 1, N), "load": np.full(N, 70.0)}),
        source="test", kind=compressor)
    assert report.inserted == N
    board = Dashboard(DashboardData(store=store, settings=settings), settings=settings,
                      clock=FakeClock(), now_ms=lambda: T0 + N * 1000)
    board.refresh()
    yield board, store, settings
    store.close()


def _select(board, asset_id):
    board.asset = asset_id
    board.refresh()
    assert board.asset == asset_id


@pytest.mark.parametrize("asset_id, kind_name", [
    ("pump-01", "pump"), ("skab-1", "skab-testbed"), ("comp-01", "compressor")])
def test_every_measured_signal_gets_a_card_a_chart_and_a_column_with_its_unit_and_limits(
        mixed, asset_id, kind_name):
    board, store, settings = mixed
    _select(board, asset_id)
    kind = settings.kind(kind_name)
    newest = store.latest(1, asset=asset_id)[0]
    assert list(board.cards) == list(kind.measured)
    assert list(board.charts) == list(kind.measured)
    assert board.card_grid.children[-1] is board.status_card
    head = board.table._body.value.split("</thead>")[0]
    for name in kind.measured:
        signal = kind.signal(name)
        card, chart = board.cards[name], board.charts[name]
        # card: value, unit, limit
        assert card.unit == signal.unit
        assert card.value == pytest.approx(newest.values[name])
        assert f'<span class="unit">{signal.unit}</span>' in card._body.value
        expected = {k: getattr(signal, k) for k in ("warning_high", "critical_high", "warning_low",
                                                    "critical_low") if getattr(signal, k) is not None}
        assert card.view.limits == expected
        if signal.warning_high is not None:
            assert f"limit {signal.warning_high:g}" in card._body.value
        # chart: title with the unit, one line per limit the y range shows
        assert chart.figure.title.endswith(f"({signal.unit})")
        assert chart.limits() == expected
        assert chart.points > 0
        lo, hi = chart.y_scale.min, chart.y_scale.max
        for limit, level in expected.items():
            mark = chart.limit_marks[limit]
            if lo <= level <= hi:
                assert list(mark.y) == [level, level], (name, limit)
            else:
                assert len(mark.y) == 0, (name, limit)
        if signal.warning_high is not None:      # the high warning line is always in view
            assert list(chart.limit.y) == [signal.warning_high] * 2
        # table: a column per signal, headed with its unit
        assert f"<th>{card.view.title}</th>" in head
        assert signal.unit in card.view.title
    # the state signals (load, speed, ambient, …) are not drawn
    for name in kind.state:
        assert name not in board.cards and name not in board.charts
    # the table keeps five rows and the seed's two leading columns
    assert head.count("<th>") == 2 + len(kind.measured)
    assert [r.id for r in board.table.rows] == [r.id for r in store.latest(theme.TABLE_ROWS, asset=asset_id)]


def test_the_pump_page_keeps_the_seed_look(mixed):
    board, store, settings = mixed
    _select(board, "pump-01")
    assert [c.label for c in board.cards.values()] == ["Temperature", "Vibration", "Pressure"]
    assert [c.unit for c in board.cards.values()] == ["°C", "g RMS", "bar"]
    assert "cols-5" not in board.card_grid._dom_classes
    assert not any(c.startswith("cols-") for c in board.chart_panel._dom_classes)   # 3 columns
    newest = store.latest(1, asset="pump-01")[0]
    assert board.cards["temperature"].text == f"{newest.temperature:.1f}"
    assert board.cards["vibration"].text == f"{newest.vibration:.3f}"
    # the high warning and critical lines are in view; the far low limits are in the legend
    assert [k for k, m in board.charts["pressure"].limit_marks.items() if len(m.y)] == [
        "warning_high", "critical_high"]
    legend = board.charts["pressure"].legend.value
    assert all(f"{w} {s} {v:g}" in legend for w, s, v in [
        ("warning", "&ge;", 95), ("critical", "&ge;", 105), ("warning", "&le;", 1), ("critical", "&le;", 0.5)])
    assert "temperature, vibration, pressure" in board.title_html.value


def test_a_skab_asset_shows_eight_channels_wrapped_in_rows(mixed):
    board, _, _ = mixed
    _select(board, "skab-1")
    assert len(board.cards) == 8
    assert "cols-5" in board.card_grid._dom_classes and "many" in board.card_grid._dom_classes
    assert "cols-4" in board.chart_panel._dom_classes
    assert all(c.figure.layout.height == theme.CHART_ROW_HEIGHT for c in board.charts.values())
    assert "wide" in board.table._dom_classes
    assert board.cards["Voltage"].text == "230" or board.cards["Voltage"].text.count(".") == 0
    assert board.cards["Accelerometer1RMS"].text.startswith("0.2")
    assert "skab-testbed" in board.title_html.value


def test_limits_of_a_user_kind_drive_the_alarms_and_the_page_follows_them(mixed):
    from dashboard_support import beat

    board, store, settings = mixed
    _select(board, "comp-01")
    newest = store.latest(1, asset="comp-01")[0]
    assert newest.values["discharge_pressure"] < 6.0
    # no monitor has run: the page invents no status from the raw readings
    assert board.status_card.state == "nodetect"
    assert "detection not running" in board.status_card.detail
    assert 'class="value over"' not in board.cards["discharge_pressure"]._body.value
    assert {t["level"] for t in board.fleet.assets} == {"nodetect"}
    # the table still marks the reading beyond the kind's low limit (a fact of that reading)
    assert '<td class="over">' in board.table._body.value
    # the alarm engine records a low-pressure warning and a monitor beats: the page shows it
    store.open_alert("comp-01", "discharge_pressure_low", "discharge_pressure", "warning",
                     "\u26a0\ufe0f Low discharge pressure 5.8 bar below 6 bar", newest.ts, newest.ts, 5.8)
    beat(store, T0 + N * 1000)
    board.refresh()
    assert board.status_card.state == "alert" and board.status_card.severity == "warning"
    assert any("discharge pressure" in m.lower() for m in board.status_card.messages)
    assert all("\u26a0" not in m for m in board.status_card.messages)       # no emoji
    assert 'class="value near"' in board.cards["discharge_pressure"]._body.value
    assert {t["asset_id"]: t["level"] for t in board.fleet.assets}["comp-01"] == "warning"
    # the readings come near the low limit: its line is in view
    chart = board.charts["discharge_pressure"]
    assert list(chart.limit_marks["warning_low"].y) == [6.0, 6.0]


def test_fleet_tiles_are_grouped_by_location_with_values_in_their_units(mixed):
    board, _, _ = mixed
    groups = board.fleet.groups()
    assert groups == [("lab/testbed", ["skab-1"]), ("plant-1/line-1", ["pump-01"]),
                      ("plant-2/air", ["comp-01"])]
    headings = [c.value for c in board.fleet.children if "twin-location" in c._dom_classes]
    assert headings == ["lab/testbed", "plant-1/line-1", "plant-2/air"]
    tiles = {t.asset_id: t for t in board.fleet.children if hasattr(t, "asset_id")}
    assert " °C · " in tiles["pump-01"].description and " bar" in tiles["pump-01"].description
    assert " A" in tiles["comp-01"].description
    assert "+5" in tiles["skab-1"].description                   # 3 of its 8 values, "+5"
    assert "no forecast model" in tiles["skab-1"].description


def test_a_fleet_without_locations_has_no_headings(store):
    board = Dashboard(DashboardData(store=store), clock=FakeClock(), now_ms=lambda: 0)
    board.refresh()
    assert not [c for c in board.fleet.children if "twin-location" in c._dom_classes]
    assert len(board.fleet.children) == len(store.latest_per_asset())


def test_the_state_object_holds_no_widgets(mixed):
    board, _, _ = mixed
    import ipywidgets as widgets

    assert isinstance(board.model, DashboardState)
    for value in vars(board.model).values():
        assert not isinstance(value, widgets.Widget)
    assert board.model.asset == board.asset and board.model.cursor == board.cursor
