"""The page draws the limits the alarm engine applies to the shown asset — learned ones labelled as
learned, with their learning window — from `twinlib.detect.limits_in_force`, the API's call; the
cards and the table use the same levels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.config import get_settings
from twinlib.dashboard import Dashboard, DashboardData, theme
from twinlib.detect import AlarmEngine, limits_in_force
from twinlib.ingest import ingest_frame
from twinlib.kinds import builtin_kind
from twinlib.store import open_store

from dashboard_support import beat

T0 = 1_770_681_600_000
STEP = 300_000                   # a reading every 5 minutes
N = 2 * 288                      # two days
SETTINGS = """
[assets."m-1"]
kind = "machine-temperature"
[assets."m-1".rules]
learn_limits_hours = 24
[assets."pump-01".thresholds]
temperature = 80
"""


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def fleet(tmp_path):
    """m-1 runs at ~100 °C (over its kind's 85 °C) and learns its limits over its first day; its
    last readings fall to 90 °C. pump-01 has its own temperature limit. Nothing checked yet."""
    path = tmp_path / "twin.toml"
    path.write_text(SETTINGS, encoding="utf-8")
    settings = get_settings(env={}, settings_file=path, db_path=tmp_path / "twin.db")
    store = open_store(settings.db_path, create=True)
    rng = np.random.default_rng(17)
    temp = 100 + rng.normal(0, 0.8, N)
    temp[-8:] = 90.0
    ingest_frame(store, pd.DataFrame({"ts": T0 + np.arange(N) * STEP, "asset_id": "m-1",
                                      "temperature": temp}),
                 source="t", kind=builtin_kind("machine-temperature"))
    ingest_frame(store, pd.DataFrame({
        "ts": T0 + np.arange(30) * 1000, "asset_id": "pump-01",
        "temperature": 60 + rng.normal(0, 0.5, 30), "vibration": 0.3 + rng.normal(0, 0.01, 30),
        "pressure": 40 + rng.normal(0, 0.5, 30)}), source="t", kind=builtin_kind("pump"))
    clock = Clock()
    end = T0 + N * STEP
    board = Dashboard(DashboardData(store=store, settings=settings), settings=settings,
                      clock=clock, now_ms=lambda: end)
    board.asset = "m-1"
    yield board, store, settings, clock
    store.close()


def _levels(lim: dict) -> dict:
    out = {}
    for side in ("high", "low"):
        if lim[side] is not None and lim[side].warning is not None:
            out[f"warning_{side}"] = lim[side].warning
            out[f"critical_{side}"] = lim[side].critical
    return out


def test_the_chart_draws_the_learned_limits_and_says_they_are_learned(fleet):
    board, store, settings, clock = fleet
    engine = AlarmEngine(store, settings=settings)
    engine.process_new()
    beat(store, T0 + N * STEP)
    board.refresh()
    assert board.asset == "m-1"
    lim = limits_in_force(store, "m-1", settings=settings)["temperature"]
    assert lim["high"].source == lim["low"].source == "learned"
    learned = _levels(lim)
    assert learned["warning_high"] != 85.0 and 90 < learned["warning_low"] < 100
    chart, card = board.charts["temperature"], board.cards["temperature"]
    # the chart's limits are the learned ones, and each line in view sits at its level
    assert chart.limits() == pytest.approx(learned)
    assert chart.limits().keys() == learned.keys()
    lo, hi = chart.y_scale.min, chart.y_scale.max
    drawn = {k: m.y[0] for k, m in chart.limit_marks.items() if len(m.y)}
    assert drawn == pytest.approx({k: v for k, v in learned.items() if lo <= v <= hi})
    assert "warning_low" in drawn and "warning_high" in drawn
    assert chart.limit_marks["warning_low"].labels == ["warning low (learned)"]
    # the legend labels them learned; its tooltip gives the learning window and statistics
    legend = chart.legend.value
    assert legend.count("<em>learned</em>") == 4
    assert "first 24 h of readings (2026-02-10 00:00 – 2026-02-11 00:00 UTC)" in legend
    assert f"median {lim['high'].median:.4g}" in legend
    # the card shows the learned limit; its sparkline line is the learned warning level
    assert card.threshold == pytest.approx(learned["warning_high"])
    assert f"limit {learned['warning_high']:.4g}" in card._body.value
    assert f"warning high {learned['warning_high']:.4g} (learned)" in card._body.value
    assert "learned from the asset&#x27;s first 24 h" in card._body.value or \
        "learned from the asset's first 24 h" in card._body.value
    # the readings at 90 °C are past the learned low limit: the table marks them, the engine
    # raised that alarm, and the card takes its colour from it
    assert len(board.table.rows) >= 3 and all(r.values["temperature"] == 90.0
                                              for r in board.table.rows)
    assert board.table._body.value.count('<td class="over">') == len(board.table.rows)
    active = store.active_alerts()
    assert [(a["rule"], a["asset_id"]) for a in active] == [("temperature_low", "m-1")]
    assert 90.0 < learned["critical_low"]          # past the learned critical level as well
    assert active[0]["severity"] == "critical"
    assert card.alarm == "critical" and 'class="value over"' in card._body.value


def test_while_it_learns_no_limit_is_drawn_and_the_page_says_so(fleet):
    board, store, settings, clock = fleet
    engine = AlarmEngine(store, settings=settings)
    engine.process_new(max_readings=100)              # about 8 h of the 24 h
    board.refresh()
    chart, card = board.charts["temperature"], board.cards["temperature"]
    assert chart.limits() == {}                       # not the kind's 85 °C: it is not in force
    assert not any(len(m.y) for m in chart.limit_marks.values())
    assert "limits being learned" in chart.legend.value
    assert "2026-02-10 00:00 – 2026-02-11 00:00 UTC" in chart.legend.value
    assert "limits being learned" in card._body.value and card.threshold is None
    # the engine finishes learning: the next status refresh brings the learned lines
    engine.process_new()
    clock.now += theme.STATUS_REFRESH_S + 1
    board.refresh()
    want = _levels(limits_in_force(store, "m-1", settings=settings)["temperature"])
    assert board.charts["temperature"].limits() == pytest.approx(want) and len(want) == 4
    assert "limits being learned" not in board.charts["temperature"].legend.value


def test_an_override_is_drawn_where_the_engine_applies_it(fleet):
    board, store, settings, _ = fleet
    board.asset = "pump-01"
    board.refresh()
    chart = board.charts["temperature"]
    assert chart.limits()["warning_high"] == 80.0 and chart.limits()["critical_high"] == 90.0
    assert list(chart.limit.y) == [80.0, 80.0]
    assert "<em>override</em>" in chart.legend.value
    assert '[assets."pump-01".thresholds]' in chart.legend.value.replace("&quot;", '"')
    assert "limit 80" in board.cards["temperature"]._body.value
    # the other signals keep their kind's limits, unlabelled
    assert board.charts["vibration"].limits()["warning_high"] == 0.8
    assert "<em>" not in board.charts["vibration"].legend.value
    rules = {r.name: r for r in AlarmEngine(store, settings=settings).ruleset("pump-01").thresholds}
    assert rules["temperature_high"].warning == 80.0 and rules["temperature_high"].critical == 90.0
