"""Scores on labelled data, and rules vs detectors on the simulated fleet."""
import numpy as np
import pandas as pd
import pytest

from twinlib.detect import TwinResidualDetector
from twinlib.detect.scoring import compare_on_fleet, evaluate_alarms, format_comparison, outlier_metrics, runs
from twinlib.simulate import simulate_fleet


def test_outlier_metrics_by_hand():
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    truth = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0], bool)
    m = outlier_metrics(pred, truth)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / (2 + 1)) and m["far"] == pytest.approx(1 / 7)
    assert m["mar"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        outlier_metrics(pred, truth[:5])


def test_runs():
    s, e = runs([0, 1, 1, 0, 1, 0, 1])
    assert s.tolist() == [1, 4, 6] and e.tolist() == [3, 5, 7]


def test_evaluate_alarms_delay_false_alarms_and_recovery():
    n = 2 * 86_400 // 60                            # two days, one row per minute
    ts = pd.date_range("2026-02-10", periods=n, freq="60s")
    label = np.full(n, "healthy", dtype=object)
    label[1000:1100] = "leak"
    pred = np.zeros(n, bool)
    pred[1010:1100] = True                          # caught 10 minutes after onset
    pred[1110:1115] = True                          # in the recovery hour: not a false alarm
    pred[2000:2003] = True                          # a false alarm
    r = evaluate_alarms(pd.DataFrame({"timestamp": ts, "asset_id": "a", "label": label}), pred)
    assert r["events"] == 1 and r["events_detected"] == 1
    assert r["median_delay_s"] == 600
    assert r["false_alarms"] == 1 and r["alarms"] == 3
    assert r["false_alarms_per_asset_day"] == pytest.approx(1 / r["asset_days"])
    assert r["per_kind"]["leak"]["row_recall"] == pytest.approx(0.9)
    assert r["tp"] == 90 and r["fn"] == 10 and r["fp"] == 3   # recovery rows not scored


def test_a_leak_no_threshold_sees_is_caught_by_the_twin_detector():
    res = simulate_fleet(assets=2, hours=30.0, seed=11, start="2026-02-10 00:00:00", fault_rate=0,
                         faults=[{"asset_id": "pump-02", "kind": "leak",
                                  "onset": "2026-02-11 02:00:00", "duration_s": 10_800}])
    table = compare_on_fleet(res.readings, {"twin": TwinResidualDetector(seed=0)}, train_hours=24)
    assert table.loc["seed thresholds", "leak"] == "0/1"
    assert table.loc["alarm rules", "leak"] == "0/1"
    assert table.loc["twin", "leak"] == "1/1"
    assert table.loc["twin", "median_delay_s"] < 3600
    assert table.loc["twin", "false_alarms_per_asset_day"] < 2
    text = format_comparison(table)
    assert "twin" in text and "FA/asset-day" in text


def test_alarm_lifecycle_holds_and_clears_like_the_rules():
    from twinlib.detect.scoring import alarm_lifecycle

    f = np.zeros(100, bool)
    f[5] = True                                   # one flagged row: no alarm
    f[10:13] = True                               # three in a row: an alarm from row 10
    f[14:16] = True                               # a flicker inside the off-delay: same alarm
    out = alarm_lifecycle(f, hold=3, clear=5)
    assert not out[5] and out[10:16].all()           # row 13 (quiet) is inside the alarm
    assert not out[16:].any()                        # ended at the first of 5 quiet rows
    s, e = runs(out)
    assert s.tolist() == [10] and e.tolist() == [16]
    f[30:32] = True                                  # two rows only: below the hold
    assert not alarm_lifecycle(f, hold=3, clear=5)[30:40].any()
    with pytest.raises(ValueError):
        alarm_lifecycle(f, hold=0)
