"""Time-to-threshold forecasts: right ETA on a known ramp, silence on healthy or stepped data,
an 80 % range that holds the truth about 80 % of the time at every lead and at 1× and 2× speed,
few false forecasts on healthy fleets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.config import THRESHOLDS
from twinlib.models.evaluate import (
    calibrate_forecast,
    calibrated_range,
    calibration_table,
    cross_validate_forecast,
    evaluate_forecasts,
    simulate_degradations,
)
from twinlib.models.forecast import (
    CALIBRATION,
    CALIBRATION_COVERAGE,
    ForecastParams,
    calibrated_hours,
    forecast_asset,
    forecast_frame,
    speed_score,
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
    # On a straight ramp the curve through the window is the line; the expectation lies
    # inside the range.
    assert f["curve_hours_to_threshold"] == pytest.approx(f["hours_to_threshold"], rel=0.1)
    assert f["eta_low"] <= f["eta_expected"] <= f["eta_high"]
    assert all(type(f[k]) is float for k in ("hours_to_threshold", "expected_hours_to_threshold",
                                              "curve_hours_to_threshold", "current"))
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
        for share in (None, 0.02, 0.2, 2.0):
            for gap in (None, 0.02, 0.2, 0.8):
                for h in (0.05, 0.2, 0.7, 1.5, 3.0, 7.0, 20.0):
                    low, mid, high = calibrated_hours(sensor, h, slope_share=share, gap_share=gap)
                    assert 0 < low <= mid <= high
    assert calibrated_hours("humidity", 2.0) == (2.0, 2.0, 2.0)


def test_both_regimes_of_the_shipped_table_are_used():
    # The shipped table splits on the speed score: trends that rise fast while far from the
    # threshold score fast, slow ones near it score slow, and the two get different ranges.
    for sensor, entry in CALIBRATION.items():
        assert set(entry["weights"]) == {"log_slope_share", "log_gap_share", "log_curve_hours"}
        scores = [speed_score(entry, share, gap, 1.0)
                  for share in (0.01, 0.1, 1.0, 10.0) for gap in (0.01, 0.1, 0.5, 0.9)]
        assert min(scores) < entry["split"] < max(scores), sensor


def test_the_regime_follows_the_speed_score_of_the_trend():
    band = {"log_true_hours": (-1.0, 1.0), "q_low": (-0.2, -0.2), "q_mid": (0.0, 0.0),
            "q_high": (0.3, 0.3)}
    narrow = {"log_true_hours": (0.0,), "q_low": (-0.05,), "q_mid": (0.0,), "q_high": (0.05,)}
    weights = {"log_slope_share": 0.0, "log_gap_share": 1.0, "log_curve_hours": 0.0}
    table = {"pressure": {"split": float(np.log(0.3)), "weights": weights,
                          "slow": band, "fast": narrow}}
    # Same rise per hour: far from the threshold scores fast (narrow band), near it slow.
    low, _, high = calibrated_hours("pressure", 2.0, table, slope_share=0.1, gap_share=0.5)
    assert high / low == pytest.approx(np.exp(0.1), rel=0.03)
    low, _, high = calibrated_hours("pressure", 2.0, table, slope_share=0.1, gap_share=0.1)
    assert high / low == pytest.approx(np.exp(0.5), rel=0.03)
    # Without the distance to the threshold the score is unknown: the slow (wider) regime.
    low, _, high = calibrated_hours("pressure", 2.0, table, slope_share=0.1)
    assert high / low == pytest.approx(np.exp(0.5), rel=0.03)
    assert speed_score(table["pressure"], 0.1, None, 2.0) is None
    assert speed_score(table["pressure"], 0.1, 0.5, 2.0) == pytest.approx(np.log(0.5))
    # A table without weights (fitted on one speed) splits on the rise per hour itself.
    assert speed_score({"split": 0.1}, 0.3, None, 2.0) == 0.3


def test_the_range_inverts_the_error_table():
    # Forecasts that run 0.2 to 0.3 (log) away from the truth: a forecast of 2 h means a truth
    # between 2·e^-0.3 and 2·e^0.2 h, its median at 2 h. A fast trend uses its own regime.
    band = {"log_true_hours": (-1.0, 1.0), "q_low": (-0.2, -0.2), "q_mid": (0.0, 0.0),
            "q_high": (0.3, 0.3)}
    narrow = {"log_true_hours": (0.0,), "q_low": (-0.05,), "q_mid": (0.0,), "q_high": (0.05,)}
    table = {"pressure": {"split": 0.1, "slow": band, "fast": narrow}}
    low, mid, high = calibrated_hours("pressure", 2.0, table, slope_share=0.05)
    assert low == pytest.approx(2.0 * np.exp(-0.3), rel=0.02)
    assert mid == pytest.approx(2.0, rel=0.02)
    assert high == pytest.approx(2.0 * np.exp(0.2), rel=0.02)
    low, _, high = calibrated_hours("pressure", 2.0, table, slope_share=0.2)
    assert high / low == pytest.approx(np.exp(0.1), rel=0.03)
    # A range that reaches past the grid of true times has no upper end.
    assert calibrated_hours("pressure", 60.0, table)[2] == float("inf")


def test_a_pressure_ramp_that_began_within_the_window_is_forecast_but_a_step_is_not():
    def frame(pressure):
        df = _frame(lambda h: 60.0 + 0 * h, noise=0.2)
        hours = (df["ts"].to_numpy() - T0) / 3_600_000
        df["pressure"] = pressure(hours) + np.random.default_rng(3).normal(0, 0.4, len(df))
        return df

    # Flat for the first half of the window, then rising 40 bar per hour toward 90 bar.
    ramp = frame(lambda h: 50.0 + np.where(h > 0.4, 40.0 * (h - 0.4), 0.0))
    out = [f for f in forecast_frame(ramp, THRESHOLDS) if f["sensor"] == "pressure"]
    assert len(out) == 1
    assert forecast_frame(ramp, THRESHOLDS, params=ForecastParams(recent_sensors=())) == []
    # The same rise as a step in the recent half: not a degradation.
    step = frame(lambda h: np.where(h > 0.55, 62.0, 50.0))
    assert forecast_frame(step, THRESHOLDS) == []


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
@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_the_range_holds_the_truth_about_as_often_as_it_claims(speed):
    # A seed the calibration never saw (it used 100-115), forecast every 5 min up to 4 h ahead.
    fleet = simulate_degradations(7, speed=speed)
    report = evaluate_forecasts(fleet.readings, fleet.events, lambda a: THRESHOLDS,
                                lead_hours=tuple(np.arange(1, 49) / 12), healthy_every_h=None)
    assert report["nominal_coverage"] == 0.8
    made = sum(t["forecast"] for t in report["details"])
    assert made > 200
    # One seed of 12 pumps: left out one at a time, the 16 calibration seeds' coverage ran
    # 0.74-0.84 at 1x and 0.78-0.87 at 2x (0.71-0.81 and 0.77-0.87 with the slope-only split);
    # seed 7 is 0.72 at 1x and 0.86 at 2x (0.74 and 0.84 with the slope-only split). A range
    # that is not calibrated is far outside.
    assert abs(report["coverage"] - 0.8) <= 0.1, report["coverage"]
    # Per lead time, the last 20 minutes included (one seed: a wider band than the target's;
    # seed 7: 0.66 / 0.68 / 0.78 at 1x, 0.88 / 0.84 / 0.84 at 2x).
    for lo, hi, n, cov in _binned(report["details"], (0.0, 1 / 3, 1.0, 4.0)):
        assert n >= 40, (lo, hi, n)
        assert 0.6 <= cov <= 0.95, (lo, hi, cov)
    # The calibrated expectation is close in absolute terms, and closer than the straight line.
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 4.0)):
        rows = [t for t in report["details"] if t["forecast"] and lo < t["lead_h"] <= hi]
        expected = np.mean([t["expected_abs_error_h"] for t in rows])
        line = np.mean([t["abs_error_h"] for t in rows])
        assert expected < 0.3 + 0.35 * hi, (lo, hi, expected)
        assert expected < line, (lo, hi, expected, line)


def test_cross_validation_scores_each_seed_with_a_table_from_the_others():
    out = cross_validate_forecast(seeds=(1, 2), speeds=(1.0, 2.0), assets=3, hours=8.0,
                                  step_min=10.0)
    assert set(out["by_speed"]) == {"1x", "2x"}
    assert set(out["by_speed"]["1x"]) == {"0-0.25h", "0.25-0.5h", "0.5-1h", "1-2h", "2-4h", "all"}
    cell = out["by_speed"]["1x"]["all"]
    assert cell["checks"] > 0 and 0 <= cell["forecasts"] <= cell["checks"]
    covs = [c["coverage"] for sp in out["by_speed"].values() for k, c in sp.items()
            if k != "all" and c["coverage"] is not None]
    assert out["worst_bin_coverage"] == min(covs) and out["best_bin_coverage"] == max(covs)


def test_the_calibration_table_splits_slow_and_fast_trends_and_matches_the_forecast():
    fleet = simulate_degradations(5, assets=4, hours=12.0, speed=2.0)
    raw = evaluate_forecasts(fleet.readings, fleet.events, lambda a: THRESHOLDS,
                             lead_hours=tuple(np.arange(1, 25) / 12), healthy_every_h=None,
                             params=ForecastParams(calibration={}))["details"]
    table = calibration_table(raw, min_bin=5)
    made = [t for t in raw if t["forecast"]]
    for sensor in {t["sensor"] for t in made}:
        # One speed: nothing to learn a speed score from; the split is on the rise per hour.
        shares = [t["slope_share"] for t in made if t["sensor"] == sensor]
        assert table[sensor]["split"] == pytest.approx(np.median(shares), rel=1e-3)
        assert set(table[sensor]) == {"split", "slow", "fast"}
    _assert_served_as_scored(fleet, raw, table, tuple(np.arange(1, 25) / 12))


def test_a_table_from_two_speeds_splits_on_the_speed_score_and_matches_the_forecast():
    leads = tuple(np.arange(1, 25) / 12)
    raw, fleets = [], {}
    for speed in (1.0, 2.0):
        fleets[speed] = simulate_degradations(5, assets=4, hours=12.0, speed=speed)
        raw += [{**t, "speed": speed} for t in evaluate_forecasts(
            fleets[speed].readings, fleets[speed].events, lambda a: THRESHOLDS, lead_hours=leads,
            healthy_every_h=None, params=ForecastParams(calibration={}))["details"]]
    table = calibration_table(raw, min_bin=5)
    made = [t for t in raw if t["forecast"]]
    for sensor in {t["sensor"] for t in made}:
        entry = table[sensor]
        assert set(entry) == {"split", "weights", "slow", "fast"}
        scores = [speed_score(entry, t["slope_share"], t["gap_share"], t["curve_h"])
                  for t in made if t["sensor"] == sensor]
        assert entry["split"] == pytest.approx(np.median(scores), rel=1e-3, abs=1e-4)
        # The score ranks the faster degradations higher at the same lead.
        fast = [s for s, t in zip(scores, [t for t in made if t["sensor"] == sensor])
                if t["speed"] == 2.0]
        slow = [s for s, t in zip(scores, [t for t in made if t["sensor"] == sensor])
                if t["speed"] == 1.0]
        if fast and slow:
            assert np.mean(fast) > np.mean(slow), sensor
    _assert_served_as_scored(fleets[2.0], [t for t in raw if t["speed"] == 2.0], table, leads)


def _assert_served_as_scored(fleet, raw, table, leads):
    """What the CV scores (``calibrated_range`` of the raw trials) is what ``forecast_frame``
    serves with that table."""
    served = evaluate_forecasts(fleet.readings, fleet.events, lambda a: THRESHOLDS,
                                lead_hours=leads, healthy_every_h=None,
                                params=ForecastParams(calibration=table, coverage=0.8))["details"]
    assert len(served) == len(raw)
    for r, t in zip(raw, served):
        assert r["forecast"] == t["forecast"]
        if t["forecast"]:
            low, high = calibrated_range(r, table)
            assert t["low_h"] == pytest.approx(low, rel=0.03)
            assert (t["high_h"] is None) == (high == float("inf"))
            if t["high_h"] is not None:
                assert t["high_h"] == pytest.approx(high, rel=0.03)


@pytest.mark.slow
def test_false_forecasts_on_a_healthy_fleet_are_rare():
    fleet = simulate_fleet(assets=12, hours=24.0, seed=201, start="2026-02-10 00:00:00",
                           fault_rate=0.0)
    report = evaluate_forecasts(fleet.readings, fleet.events, lambda a: THRESHOLDS,
                                healthy_every_h=1 / 6)
    assert report["healthy_checks"] > 1500
    # Measured 3.6 % (the straight-line rules alone: 8.8 %); bound 6 %.
    assert report["false_forecast_rate"] < 0.06, report["false_forecast_rate"]


@pytest.mark.slow
def test_calibration_constants_are_what_calibrate_forecast_derives():
    derived = calibrate_forecast()
    assert derived["coverage"] == CALIBRATION_COVERAGE
    assert set(derived["table"]) == set(CALIBRATION)
    for sensor, entry in CALIBRATION.items():
        assert derived["table"][sensor]["split"] == pytest.approx(entry["split"], rel=1e-3)
        assert derived["table"][sensor]["weights"] == pytest.approx(entry["weights"], abs=1e-3)
        for regime in ("slow", "fast"):
            for key, values in entry[regime].items():
                got = derived["table"][sensor][regime][key]
                assert got == pytest.approx(values, abs=1e-3), (sensor, regime, key)
