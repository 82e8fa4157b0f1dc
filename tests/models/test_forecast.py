"""Time-to-threshold forecasts: right ETA on a known ramp, silence on healthy or stepped data,
an 80 % range that holds the truth about 80 % of the time, few false forecasts on healthy fleets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.config import THRESHOLDS
from twinlib.models.evaluate import calibrate_forecast, evaluate_forecasts, simulate_degradations
from twinlib.models.forecast import (
    CALIBRATION,
    CALIBRATION_COVERAGE,
    ForecastParams,
    calibrated_hours,
    forecast_asset,
    forecast_frame,
)
from twinlib.simulate import simulate_fleet
from twinlib.store import open_store

T0 = 1_770_681_600_000  # 2026-02-10 00:00:00 UTC
KEYS = {"sensor", "threshold", "current", "slope_per_hour", "eta", "eta_low", "eta_high",
        "hours_to_threshold"}


def _frame(temperature, seconds=2700, seed=0, noise=0.25):
    """One asset at 1 s: temperature from a function of hours, other sensors flat."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds)
    hours = t / 3600.0
    return pd.DataFrame({
        "ts": T0 + t * 1000,
        "asset_id": "pump-01",
        "temperature": temperature(hours) + rng.normal(0, noise, seconds),
        "vibration": 0.3 + rng.normal(0, 0.01, seconds),
        "pressure": 50 + rng.normal(0, 0.4, seconds),
    })


def test_a_linear_ramp_gives_the_right_eta():
    df = _frame(lambda h: 60.0 + 10.0 * h)  # 10 °C per hour, 67.5 °C after 45 min
    now = int(df["ts"].max())
    out = forecast_frame(df, THRESHOLDS, now_ms=now)
    assert [f["sensor"] for f in out] == ["temperature"]
    f = out[0]
    assert KEYS <= set(f)
    true_eta = T0 + int((85.0 - 60.0) / 10.0 * 3_600_000)
    assert abs(f["eta"] - true_eta) < 0.1 * 3_600_000
    assert f["eta_low"] <= true_eta <= f["eta_high"]
    # The calibrated expectation allows for the acceleration of the simulated degradations
    # (sooner than the line), and lies inside the range too.
    assert f["eta_low"] <= f["eta_expected"] < f["eta"] <= f["eta_high"]
    assert f["expected_hours_to_threshold"] == pytest.approx((f["eta_expected"] - now) / 3_600_000,
                                                             abs=1e-3)
    assert f["coverage"] == CALIBRATION_COVERAGE == 0.8
    assert f["slope_per_hour"] == pytest.approx(10.0, rel=0.1)
    assert f["hours_to_threshold"] == pytest.approx((f["eta"] - now) / 3_600_000, abs=1e-3)
    assert f["current"] == pytest.approx(67.5, abs=0.5)
    assert f["threshold"] == 85.0


def test_flat_falling_or_past_threshold_signals_give_nothing():
    assert forecast_frame(_frame(lambda h: 60.0 + 0 * h), THRESHOLDS) == []
    assert forecast_frame(_frame(lambda h: 70.0 - 8.0 * h), THRESHOLDS) == []
    assert forecast_frame(_frame(lambda h: 90.0 + 8.0 * h), THRESHOLDS) == []


def test_a_step_in_the_operating_point_is_not_a_degradation():
    step = _frame(lambda h: np.where(h < 0.3, 50.0, 65.0))
    assert forecast_frame(step, THRESHOLDS) == []


def test_a_levelling_thermal_transient_is_not_a_degradation():
    # Temperature after a load step: rises fast, then settles (time constant 15 min).
    transient = _frame(lambda h: 50.0 + 25.0 * (1 - np.exp(-h / 0.25)))
    assert forecast_frame(transient, THRESHOLDS) == []


def test_a_restart_transient_is_not_a_degradation():
    # Stopped and cooled, restarted 30 min ago: temperature climbs toward its running level
    # (time constant 20 min). Both halves of the window rise and the recent one is not flatter
    # enough to look levelled; only the step-response refit explains it.
    def restarted(h):
        return 45.0 + np.where(h > 0.25, 30.0 * (1 - np.exp(-(h - 0.25) / (20 / 60))), 0.0)

    restart = _frame(restarted)
    assert forecast_frame(restart, THRESHOLDS) == []
    # Without the refit the same window is a (false) forecast: the check is what rejects it.
    assert len(forecast_frame(restart, THRESHOLDS, params=ForecastParams(lagged_sensors=()))) == 1


def test_a_ramp_on_top_of_a_load_step_is_still_forecast():
    def ramp_and_step(h):
        step = np.where(h > 0.25, 8.0 * (1 - np.exp(-(h - 0.25) / (20 / 60))), 0.0)
        return 55.0 + 12.0 * h + step

    ramp = _frame(ramp_and_step)
    out = forecast_frame(ramp, THRESHOLDS)
    assert [f["sensor"] for f in out] == ["temperature"]


def test_calibrated_hours_are_ordered_and_unknown_sensors_keep_the_line():
    for sensor in CALIBRATION:
        for h in (0.05, 0.2, 0.7, 1.5, 3.0, 7.0, 20.0):
            low, mid, high = calibrated_hours(sensor, h)
            assert 0 < low <= mid <= high
    assert calibrated_hours("humidity", 2.0) == (2.0, 2.0, 2.0)
    # Far straight-line crossings of accelerating wear come much sooner than the line says.
    assert calibrated_hours("vibration", 12.0)[1] < 4.0


def test_a_far_crossing_is_beyond_the_horizon():
    slow = _frame(lambda h: 40.0 + 1.0 * h, noise=0.02)  # 45 h away
    assert forecast_frame(slow, THRESHOLDS, params=ForecastParams(horizon_h=24)) == []
    assert len(forecast_frame(slow, THRESHOLDS, params=ForecastParams(horizon_h=72))) == 1


def test_rows_after_now_are_ignored():
    df = _frame(lambda h: 60.0 + 10.0 * h, seconds=4000)
    now = T0 + 2700 * 1000
    spoiled = df.copy()
    spoiled.loc[spoiled["ts"] > now, "temperature"] = 200.0
    assert forecast_frame(df, THRESHOLDS, now_ms=now) == forecast_frame(spoiled, THRESHOLDS, now_ms=now)


@pytest.fixture(scope="module")
def cooling(tmp_path_factory):
    """Two pumps for 4 h; pump-01's cooling fails from 01:00 (known failure time)."""
    fleet = simulate_fleet(assets=2, hours=4.0, seed=11, start="2026-02-10 00:00:00", fault_rate=0.0,
                           faults=[{"asset_id": "pump-01", "kind": "cooling_failure",
                                    "onset": "2026-02-10 01:00:00", "duration_s": 7200}])
    path = tmp_path_factory.mktemp("fc") / "twin.db"
    with open_store(path, create=True) as store:
        store.load_readings(fleet.readings)
        store.load_fault_events(fleet.events)
    failure = int(fleet.events["failure"].iloc[0].value // 1_000_000)
    return {"fleet": fleet, "path": path, "failure": failure}


def test_forecast_asset_finds_a_simulated_cooling_failure(cooling):
    now = cooling["failure"] - 15 * 60_000
    with open_store(cooling["path"]) as store:
        out = forecast_asset(store, "pump-01", now_ms=now)
        healthy = forecast_asset(store, "pump-02", now_ms=now)
    temp = [f for f in out if f["sensor"] == "temperature"]
    assert len(temp) == 1
    assert abs(temp[0]["eta"] - cooling["failure"]) < 0.25 * 3_600_000
    assert temp[0]["eta_low"] <= temp[0]["eta"] <= temp[0]["eta_high"]
    assert healthy == []


def test_forecast_asset_defaults_and_missing_asset(cooling):
    with open_store(cooling["path"]) as store:
        assert forecast_asset(store, "no-such-pump") == []
        # now defaults to the asset's newest reading: the fault has ended, nothing is degrading
        assert isinstance(forecast_asset(store, "pump-02"), list)


def test_forecast_asset_uses_per_asset_threshold_overrides(cooling, tmp_path, monkeypatch):
    settings = tmp_path / "twin.toml"
    settings.write_text('[assets."pump-01".thresholds]\ntemperature = 95.0\n')
    monkeypatch.setenv("TWIN_SETTINGS", str(settings))
    now = cooling["failure"] - 15 * 60_000
    with open_store(cooling["path"]) as store:
        out = [f for f in forecast_asset(store, "pump-01", now_ms=now) if f["sensor"] == "temperature"]
    assert out and out[0]["threshold"] == 95.0
    assert out[0]["eta"] > cooling["failure"]


def test_forecast_error_is_measured_against_known_failures(cooling):
    fleet = cooling["fleet"]
    report = evaluate_forecasts(fleet.readings, fleet.events, lambda a: THRESHOLDS,
                                lead_hours=(0.25, 0.5))
    assert report["episodes_with_failure"] == 1
    rows = {r["lead_h"]: r for r in report["per_lead"]}
    assert rows[0.25]["episodes"] == 1 and rows[0.25]["forecasts"] == 1
    assert rows[0.25]["mae_h"] < 0.25
    assert report["healthy_checks"] > 0
    assert 0.0 <= report["false_forecast_rate"] <= 1.0


def _binned(details, edges):
    made = [t for t in details if t["forecast"]]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        rows = [t for t in made if lo < t["lead_h"] <= hi]
        out.append((lo, hi, len(rows), float(np.mean([t["covered"] for t in rows]))))
    return out


@pytest.mark.slow
def test_the_range_holds_the_truth_about_as_often_as_it_claims():
    # A seed the calibration never saw (it used 100-104), forecast every 5 min up to 6 h ahead.
    fleet = simulate_degradations(7)
    report = evaluate_forecasts(fleet.readings, fleet.events, lambda a: THRESHOLDS,
                                lead_hours=tuple(np.arange(1, 73) / 12), healthy_every_h=None)
    assert report["nominal_coverage"] == 0.8
    made = sum(t["forecast"] for t in report["details"])
    assert made > 300
    assert abs(report["coverage"] - 0.8) <= 0.06, report["coverage"]
    # Per lead time: within 0.1 of nominal from 20 min on. In the last 20 min the truth often
    # comes sooner than any trend says (measured ~0.6-0.75); it must not collapse.
    for lo, hi, n, cov in _binned(report["details"], (0.0, 1 / 3, 1.0, 2.0, 6.0)):
        assert n >= 40, (lo, hi, n)
        assert cov >= (0.5 if lo == 0.0 else 0.7), (lo, hi, cov)
        assert cov <= 0.92, (lo, hi, cov)
    # The calibrated expectation is closer than the straight line, and close in absolute terms.
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 6.0)):
        rows = [t for t in report["details"] if t["forecast"] and lo < t["lead_h"] <= hi]
        expected = np.mean([t["expected_abs_error_h"] for t in rows])
        line = np.mean([t["abs_error_h"] for t in rows])
        assert expected < 0.3 + 0.35 * hi, (lo, hi, expected)
        assert expected < line, (lo, hi, expected, line)


@pytest.mark.slow
def test_false_forecasts_on_a_healthy_fleet_are_rare():
    fleet = simulate_fleet(assets=12, hours=24.0, seed=201, start="2026-02-10 00:00:00",
                           fault_rate=0.0)
    report = evaluate_forecasts(fleet.readings, fleet.events, lambda a: THRESHOLDS,
                                healthy_every_h=1 / 6)
    assert report["healthy_checks"] > 1500
    # Measured 3.8 % (the straight-line rules alone: 8.8 %); bound 6 %.
    assert report["false_forecast_rate"] < 0.06, report["false_forecast_rate"]


@pytest.mark.slow
def test_calibration_constants_are_what_calibrate_forecast_derives():
    derived = calibrate_forecast()
    assert derived["coverage"] == CALIBRATION_COVERAGE
    assert set(derived["table"]) == set(CALIBRATION)
    for sensor, table in CALIBRATION.items():
        for key, values in table.items():
            assert derived["table"][sensor][key] == pytest.approx(values, abs=1e-3), (sensor, key)
