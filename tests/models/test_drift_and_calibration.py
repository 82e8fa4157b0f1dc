"""A drifting sensor looks different from the real fault of that sensor; probabilities are calibrated."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.models.classifiers import FaultClassifier
from twinlib.models.features import FeatureBuilder, reading_times
from twinlib.simulate import simulate_fleet

ONSET = "2026-02-10 03:00:00"


@pytest.fixture(scope="module")
def drift_vs_fault():
    """Four pumps: a blockage and a pressure drift, bearing wear and a vibration drift (3 h each)."""
    faults = [{"asset_id": "pump-01", "kind": "blockage", "onset": ONSET, "duration_s": 3 * 3600},
              {"asset_id": "pump-02", "kind": "sensor_drift", "sensor": "pressure", "onset": ONSET,
               "duration_s": 3 * 3600},
              {"asset_id": "pump-03", "kind": "bearing_wear", "onset": ONSET, "duration_s": 3 * 3600},
              {"asset_id": "pump-04", "kind": "sensor_drift", "sensor": "vibration", "onset": ONSET,
               "duration_s": 3 * 3600}]
    fleet = simulate_fleet(assets=4, hours=6.5, seed=5, start="2026-02-10 00:00:00", fault_rate=0.0,
                           faults=faults)
    df = fleet.readings
    X = FeatureBuilder().fit(df).transform(df)
    ms = reading_times(df)
    late = (ms >= pd.Timestamp("2026-02-10 05:00").value // 10**6) & \
        (ms < pd.Timestamp("2026-02-10 06:00").value // 10**6)

    def median(asset, feature):
        return float(np.nanmedian(X[late & (df["asset_id"] == asset).to_numpy()][feature]))
    return median


def test_a_real_fault_scales_with_the_duty_a_drift_does_not(drift_vs_fault):
    # blockage: the pump curve's extra pressure follows speed²; a drift adds the same ramp anyway
    assert drift_vs_fault("pump-01", "pressure_duty_elasticity") > 0.5
    assert abs(drift_vs_fault("pump-02", "pressure_duty_elasticity")) < 0.3
    assert drift_vs_fault("pump-03", "vibration_duty_elasticity") > 0.5
    assert abs(drift_vs_fault("pump-04", "vibration_duty_elasticity")) < 0.3
    assert drift_vs_fault("pump-01", "pressure_duty_coef_z") > 3 * abs(
        drift_vs_fault("pump-02", "pressure_duty_coef_z"))


def test_worn_bearings_are_noisier_a_drifting_sensor_is_not(drift_vs_fault):
    assert drift_vs_fault("pump-03", "vibration_noise_ratio") > 1.3
    assert drift_vs_fault("pump-04", "vibration_noise_ratio") < 1.2


def test_a_drift_is_a_straight_line_in_the_residual(drift_vs_fault):
    # a drift adds a ramp to the reading: the residual is a line of time, the ratio to the duty
    # is not (it jumps at every load change)
    assert drift_vs_fault("pump-04", "vibration_residual_r2") > drift_vs_fault(
        "pump-04", "vibration_ratio_r2") + 0.1


def test_probabilities_are_calibrated_by_asset_grouped_cross_validation(rich_fleet):
    df = rich_fleet.readings
    raw = FaultClassifier("xgb", max_train_rows=4000, calibration="none").fit(df)
    cal = FaultClassifier("xgb", max_train_rows=4000, calibration="isotonic").fit(
        df, builder=raw.builder_, features=raw.features(df))
    assert raw.calibration_ == {"method": "none", "applied": False}
    info = cal.calibration_
    assert info["applied"] and info["folds"] == 3 and info["rows"] > 1000
    # fitted on held-out assets' rows, the calibrated probabilities score better there
    assert info["brier_calibrated"] < info["brier_raw"]
    X = raw.features(df.iloc[::50])
    p_raw, p_cal = raw.predict_proba_features(X), cal.predict_proba_features(X)
    np.testing.assert_allclose(p_cal.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(cal.predict_proba_raw_features(X), p_raw, atol=1e-6)
    assert not np.allclose(p_cal, p_raw, atol=1e-3)
    # a model served through its calibrators still names the same kind of answer per row
    assert set(cal.predict_features(X)) <= set(cal.classes_)


def test_calibration_needs_two_assets_and_a_known_method(rich_fleet):
    one = rich_fleet.readings[rich_fleet.readings["asset_id"] == "pump-01"]
    model = FaultClassifier("rf", max_train_rows=2000, n_jobs=1).fit(one)
    assert model.calibration_["applied"] is False
    assert "two training assets" in model.calibration_["reason"]
    with pytest.raises(ValueError, match="calibration must be one of"):
        FaultClassifier("rf", calibration="platt").fit(one)
