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


def test_a_slow_leak_shows_in_the_local_slope_within_minutes(builder):
    """The slowest leak (3.5 h) has taken ~2 % of the head 10 min in: no fleet-wide residual
    sees it, but its ramp at a steady duty is many standard errors from anything healthy."""
    from twinlib.simulate import simulate_fleet

    fleet = simulate_fleet(assets=["pump-01"], hours=6.0, freq_s=1.0, seed=11,
                           start="2026-03-02 00:00:00", fault_rate=0.0,
                           faults=[{"asset_id": "pump-01", "kind": "leak",
                                    "onset": "2026-03-02 04:00:00", "duration_s": 3.5 * 3600}])
    X = builder.transform(fleet.readings)
    h = (reading_times(fleet.readings) - reading_times(fleet.readings).min()) / 3_600_000
    healthy = (h > 1) & (h < 4)
    early = (h > 4 + 5 / 60) & (h < 4 + 15 / 60)
    for f in ("pressure_local_slope", "pressure_local_slope_t"):
        assert X.loc[early, f].quantile(0.95) < X.loc[healthy, f].quantile(0.01), f
    # the leak's early rows are below the healthy ones on both the short slope and its t
    assert X.loc[early, "pressure_local_slope"].median() < -0.05


def test_a_load_step_is_not_a_trend(builder, rich_fleet):
    """A healthy pump changing its load moves the fleet twin's residual (pumps differ), but
    the duty term of the local regression takes the step: the slope stays near zero."""
    df = rich_fleet.readings
    X = builder.transform(df)
    healthy = (df["label"] == "healthy").to_numpy()
    load = df["load"].to_numpy()
    ids = df["asset_id"].to_numpy()
    # rows within 5 min after a load change of more than 0.1 (same pump)
    changed = np.zeros(len(df), dtype=bool)
    for a in pd.unique(ids):
        pos = np.flatnonzero(ids == a)
        jump = np.abs(np.diff(load[pos], prepend=load[pos][0])) > 0.002
        near = pd.Series(jump.astype(float)).rolling(300, min_periods=1).max().to_numpy() > 0
        changed[pos] = near
    rows = healthy & changed
    assert rows.sum() > 1000
    # the same window's slope of the fleet twin's residual, on time alone, relative to the duty
    expected = builder.twin_.expected(df)["pressure"].to_numpy()
    resid = df["pressure"].to_numpy() - expected
    naive = np.full(len(df), np.nan)
    ms = reading_times(df)
    for a in pd.unique(ids):
        pos = np.flatnonzero(ids == a)
        t = pd.DatetimeIndex(ms[pos].astype("datetime64[ms]"))
        hours = pd.Series(ms[pos] / 3_600_000.0, index=t)
        r = pd.Series(resid[pos], index=t)
        roll = r.rolling("600s", min_periods=60)
        slope = roll.cov(hours) / hours.rolling("600s", min_periods=60).var()
        naive[pos] = (slope / pd.Series(expected[pos], index=t).rolling("600s").mean()).to_numpy()
    local = X.loc[rows, "pressure_local_slope"].abs().median()
    assert local < 0.5 * np.nanmedian(np.abs(naive[rows]))
