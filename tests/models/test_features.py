"""Features are causal (the future never changes the past) and carry the faults' signatures."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.models.features import FeatureBuilder, FeatureSpec, reading_times


@pytest.fixture(scope="module")
def builder(rich_fleet):
    return FeatureBuilder().fit(rich_fleet.readings)


def test_feature_columns_follow_the_spec(builder, rich_fleet):
    X = builder.transform(rich_fleet.readings.iloc[:5000])
    assert list(X.columns) == FeatureSpec().names()
    assert len(X) == 5000
    assert X.index.equals(rich_fleet.readings.index[:5000])


def test_features_do_not_look_into_the_future(builder, rich_fleet):
    df = rich_fleet.readings
    ms = reading_times(df)
    cut = int(ms.min()) + 4 * 3_600_000
    past = df[ms <= cut]
    full = builder.transform(df).loc[past.index]
    prefix = builder.transform(past)
    # Same rows, same values: computing with the whole future available changes nothing.
    np.testing.assert_allclose(full.to_numpy(), prefix.to_numpy(), rtol=1e-9, atol=1e-9)


def test_changing_the_future_leaves_past_features_alone(builder, rich_fleet):
    df = rich_fleet.readings.copy()
    ms = reading_times(df)
    cut = int(ms.min()) + 5 * 3_600_000
    before = builder.transform(df)
    future = ms > cut
    df.loc[future, ["temperature", "vibration", "pressure", "load", "speed"]] *= 3.0
    after = builder.transform(df)
    past = ~future
    np.testing.assert_allclose(before[past].to_numpy(), after[past].to_numpy(), rtol=1e-9, atol=1e-9)
    # ...and the change does show up after the cut, so the comparison can fail.
    assert not np.allclose(before[future].to_numpy(), after[future].to_numpy(), equal_nan=True)


def test_row_order_of_the_fleet_does_not_matter(builder, rich_fleet):
    df = rich_fleet.readings.iloc[:30_000]
    shuffled = df.sample(frac=1.0, random_state=0)
    a = builder.transform(df)
    b = builder.transform(shuffled).loc[df.index]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-9)


def _episode_rows(fleet, asset: str, kind: str) -> np.ndarray:
    df = fleet.readings
    return ((df["asset_id"] == asset) & (df["label"] == kind)).to_numpy()


def test_features_carry_fault_signatures(builder, rich_fleet):
    X = builder.transform(rich_fleet.readings)
    df = rich_fleet.readings
    healthy = (df["label"] == "healthy").to_numpy()
    # A blockage raises pressure above what the twin expects.
    blockage = _episode_rows(rich_fleet, "pump-03", "blockage")
    shift = X["pressure_residual_shift"]
    assert shift[blockage].median() > shift[healthy].quantile(0.99)
    # A stuck sensor stops changing.
    stuck = _episode_rows(rich_fleet, "pump-06", "sensor_stuck")
    late = stuck & (np.cumsum(stuck) > 600)  # once the window is full of the stuck value
    assert X.loc[late, "temperature_flat"].median() > 0.9
    assert X.loc[healthy, "temperature_flat"].median() < 0.2
    # A leak lowers pressure against the twin and against the asset's own baseline.
    leak = _episode_rows(rich_fleet, "pump-04", "leak")
    assert X.loc[leak, "pressure_residual_shift"].median() < -2.0


def test_transform_before_fit_is_refused(rich_fleet):
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureBuilder().transform(rich_fleet.readings.iloc[:10])


def test_spec_rejects_inconsistent_windows():
    with pytest.raises(ValueError, match="window"):
        FeatureSpec(window_s=600, long_window_s=300)


def test_reading_times_accepts_ts_or_timestamp():
    df = pd.DataFrame({"timestamp": pd.to_datetime(["2026-02-10 00:00:01"])})
    assert reading_times(df).tolist() == [1770681601000]
    assert reading_times(pd.DataFrame({"ts": [5]})).tolist() == [5]
    with pytest.raises(ValueError, match="ts"):
        reading_times(pd.DataFrame({"x": [1]}))
