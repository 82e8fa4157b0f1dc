"""`limits_in_force`: the limits the alarm engine applies to an asset, with their source — the
kind's levels, the settings' per-asset (or fleet-wide) override, or limits learned from the
asset's own first hours — read off the rules themselves, one call for the API and the dashboard."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.config import get_settings
from twinlib.detect import AlarmEngine, limits_in_force
from twinlib.detect.engine import healthy_rows
from twinlib.detect.limits import limits_json
from twinlib.ingest import ingest_frame
from twinlib.kinds import builtin_kind
from twinlib.store import open_store

T0 = 1_770_681_600_000
STEP = 300_000                    # one reading per 5 minutes (NAB's machine temperature)
N = 3 * 288                       # three days


def _settings(tmp_path, text: str, db: str = "twin.db"):
    path = tmp_path / f"{db}.toml"
    path.write_text(text, encoding="utf-8")
    return get_settings(env={}, settings_file=path, db_path=tmp_path / db)


def _pumps(store, assets=("pump-01", "pump-02"), n=20):
    rng = np.random.default_rng(3)
    for a in assets:
        ingest_frame(store, pd.DataFrame({
            "ts": T0 + np.arange(n) * 1000, "asset_id": a,
            "temperature": 60 + rng.normal(0, 0.5, n), "vibration": 0.3 + rng.normal(0, 0.01, n),
            "pressure": 40 + rng.normal(0, 0.5, n)}), source="t", kind=builtin_kind("pump"))


def test_a_pump_without_settings_has_its_kinds_limits(tmp_path):
    settings = _settings(tmp_path, "")
    store = open_store(settings.db_path, create=True)
    _pumps(store)
    lim = limits_in_force(store, "pump-01", settings=settings)
    store.close()
    pump = builtin_kind("pump")
    assert list(lim) == list(pump.measured)
    for name in pump.measured:
        sig = pump.signal(name)
        high, low = lim[name]["high"], lim[name]["low"]
        assert (high.warning, high.critical, high.source) == (sig.warning_high, sig.critical_high,
                                                              "kind")
        if sig.warning_low is None:
            assert low is None
        else:
            assert (low.warning, low.critical, low.source) == (sig.warning_low, sig.critical_low,
                                                               "kind")
    assert lim["temperature"]["high"].warning == 85.0 and lim["temperature"]["high"].unit == "°C"


def test_an_assets_own_override_moves_its_limit_and_says_where_it_comes_from(tmp_path):
    settings = _settings(tmp_path, '[thresholds]\nvibration = 0.7\n'
                                   '[assets."pump-02".thresholds]\ntemperature = 80\n'
                                   'pressure_low = 2.0\n')
    store = open_store(settings.db_path, create=True)
    _pumps(store)
    one = limits_in_force(store, "pump-01", settings=settings)
    two = limits_in_force(store, "pump-02", settings=settings)
    engine_rules = {r.name: r for r in AlarmEngine(store, settings=settings).ruleset("pump-02").thresholds}
    store.close()
    # pump-01: the kind's temperature, the fleet-wide vibration override
    assert one["temperature"]["high"].source == "kind" and one["temperature"]["high"].warning == 85
    vib = one["vibration"]["high"]
    assert (vib.source, vib.setting, vib.warning) == ("override", "[thresholds]", 0.7)
    # pump-02: its own temperature (the critical level moves with the warning: 85→95 is +10)
    t = two["temperature"]["high"]
    assert (t.source, t.setting, t.warning, t.critical) == (
        "override", '[assets."pump-02".thresholds]', 80.0, 90.0)
    low = two["pressure"]["low"]
    assert (low.source, low.warning) == ("override", 2.0)
    assert two["pressure"]["high"].source == "kind"
    # the engine applies exactly these levels
    assert engine_rules["temperature_high"].warning == t.warning
    assert engine_rules["temperature_high"].critical == t.critical
    assert engine_rules["pressure_low"].warning == low.warning


@pytest.fixture
def learning(tmp_path):
    """A machine that runs at ~100 °C (above its kind's 85 °C), with learned limits over its
    first 24 h, three days of readings stored and nothing checked yet."""
    text = ('[assets."m-1"]\nkind = "machine-temperature"\n[rules]\nlearn_limits_hours = 24\n')
    settings = _settings(tmp_path, text)
    rng = np.random.default_rng(2)
    temp = 100 + 3 * np.sin(np.arange(N) / 40.0) + rng.normal(0, 0.8, N)
    temp[600:640] = np.linspace(95, 60, 40)           # the failure: a fall of 40 °C
    store = open_store(settings.db_path, create=True)
    ingest_frame(store, pd.DataFrame({"ts": T0 + np.arange(N) * STEP, "asset_id": "m-1",
                                      "temperature": temp}),
                 source="t", kind=builtin_kind("machine-temperature"))
    yield settings, store, temp
    store.close()


def test_learned_limits_are_learning_then_the_assets_own_band(learning):
    settings, store, temp = learning
    # nothing checked yet: learning, the kind's 85 °C is not in force
    before = limits_in_force(store, "m-1", settings=settings)["temperature"]
    assert before["high"].source == before["low"].source == "learned"
    assert before["high"].status == "learning" and before["high"].warning is None
    assert before["high"].learn_hours == 24 and before["high"].learned_from is None
    # half the training window checked: still learning, the window known
    engine = AlarmEngine(store, settings=settings)
    engine.process_new(max_readings=144)
    mid = limits_in_force(store, "m-1", settings=settings)["temperature"]["low"]
    assert (mid.status, mid.warning) == ("learning", None)
    assert (mid.learned_from, mid.learned_to) == (T0, T0 + 24 * 3_600_000)
    # every reading checked: the band of the first 24 h
    events = engine.process_new()
    lim = limits_in_force(store, "m-1", settings=settings)["temperature"]
    first = temp[:288 + 1]                              # readings in [T0, T0 + 24 h]
    med = float(np.median(first))
    sd = 1.4826 * float(np.median(np.abs(first - med)))
    high, low = lim["high"], lim["low"]
    assert high.status == low.status == "in force"
    assert (high.median, high.sd, high.k) == (pytest.approx(med), pytest.approx(sd), 3.5)
    assert high.warning == pytest.approx(med + 3.5 * sd)
    assert high.critical == pytest.approx(med + 1.5 * 3.5 * sd)
    assert low.warning == pytest.approx(med - 3.5 * sd)
    assert low.critical == pytest.approx(med - 1.5 * 3.5 * sd)
    assert low.deadband == pytest.approx(sd / 2)
    assert (low.learned_from, low.learned_to) == (T0, T0 + 24 * 3_600_000)
    assert 85.0 < low.warning < 100 < high.warning          # not the kind's 85 °C
    # the same levels the engine's rule holds and alarms on
    state = engine.machines["m-1"].states["temperature_low"]
    assert (state.median, state.sd) == (pytest.approx(med), pytest.approx(sd))
    raised = [e for e in events if e.kind == "raised"]
    assert [e.rule for e in raised] == ["temperature_low"]
    assert raised[0].value < low.warning
    hist = healthy_rows(store.window(T0, T0 + 24 * 3_600_000, asset="m-1"))
    assert len(hist) == 289
    # as JSON: times in ISO 8601, nothing that does not apply
    js = limits_json({"temperature": lim})["temperature"]["low"]
    assert js["source"] == "learned" and js["learned_from"] == "2026-02-10T00:00:00.000Z"
    assert "setting" not in js and "signal" not in js


def test_a_side_the_settings_give_is_not_learned(tmp_path, learning):
    _, store, _ = learning
    settings = _settings(tmp_path, '[assets."m-1"]\nkind = "machine-temperature"\n'
                                   '[assets."m-1".thresholds]\ntemperature = 110\n'
                                   '[rules]\nlearn_limits_hours = 24\n', db="other.db")
    AlarmEngine(store, settings=settings).process_new()
    lim = limits_in_force(store, "m-1", settings=settings)["temperature"]
    assert (lim["high"].source, lim["high"].warning) == ("override", 110.0)
    assert lim["low"].source == "learned" and lim["low"].status == "in force"


def test_a_signal_without_enough_readings_is_not_learned(tmp_path):
    settings = _settings(tmp_path, '[assets."m-1"]\nkind = "machine-temperature"\n'
                                   '[rules]\nlearn_limits_hours = 1\n')
    store = open_store(settings.db_path, create=True)
    # five readings in the first hour, then more: too few to learn from
    ts = T0 + np.array([0, 600, 1200, 1800, 2400, 3700, 4000]) * 1000
    ingest_frame(store, pd.DataFrame({"ts": ts, "asset_id": "m-1",
                                      "temperature": [70, 71, 70, 72, 71, 70, 71.0]}),
                 source="t", kind=builtin_kind("machine-temperature"))
    AlarmEngine(store, settings=settings).process_new()
    lim = limits_in_force(store, "m-1", settings=settings)["temperature"]
    store.close()
    assert lim["high"].status == "not learned" and lim["high"].warning is None
