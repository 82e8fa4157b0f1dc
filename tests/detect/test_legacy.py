"""The seed-compatible check keeps the original's behaviour and messages."""
import numpy as np
import pandas as pd
import pytest

from twinlib.detect import ALL_NORMAL, detect_anomalies


def frame(rows):
    return pd.DataFrame(rows, columns=["temperature", "vibration", "pressure"])


def test_all_normal_message_exactly():
    assert detect_anomalies(frame([[70.0, 0.5, 80.0]])) == ["✅ All systems normal"]
    assert ALL_NORMAL == "✅ All systems normal"


def test_each_sensor_message_in_order():
    assert detect_anomalies(frame([[90.0, 0.9, 99.0]])) == [
        "⚠️ High temperature", "⚠️ High vibration", "⚠️ High pressure"]
    assert detect_anomalies(frame([[20.0, 0.1, 96.0]])) == ["⚠️ High pressure"]


def test_only_newest_row_counts_and_threshold_is_strict():
    # an old reading over the limit is ignored; exactly at the limit is normal (strict >)
    assert detect_anomalies(frame([[120.0, 2.0, 200.0], [85.0, 0.8, 95.0]])) == [ALL_NORMAL]


def test_newest_by_timestamp_when_present():
    df = frame([[90.0, 0.1, 10.0], [20.0, 0.1, 10.0]])
    df["timestamp"] = pd.to_datetime(["2026-02-10 00:00:02", "2026-02-10 00:00:01"])
    assert detect_anomalies(df) == ["⚠️ High temperature"]  # newest-first frame


def test_missing_value_never_alarms():
    assert detect_anomalies(frame([[np.nan, 0.9, np.nan]])) == ["⚠️ High vibration"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        detect_anomalies(frame([]))
    with pytest.raises(ValueError, match="no sensor columns"):
        detect_anomalies(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError):
        detect_anomalies([[1, 2, 3]])


def test_custom_thresholds():
    assert detect_anomalies(frame([[80.0, 0.1, 10.0]]),
                            {"temperature": 75.0, "vibration": 0.8, "pressure": 95.0}) == [
        "⚠️ High temperature"]
