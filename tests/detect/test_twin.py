"""The twin model: expected sensor values from the operating state."""
import pickle

import numpy as np
import pandas as pd
import pytest

from twinlib.simulate import simulate_fleet
from twinlib.twin import NotFittedError, TwinModel


@pytest.fixture(scope="module")
def healthy():
    return simulate_fleet(assets=1, hours=12.0, seed=7, start="2026-02-10 00:00:00",
                          fault_rate=0.0).readings


def test_residuals_small_on_healthy_data_out_of_sample(healthy):
    n = len(healthy) * 2 // 3
    twin = TwinModel(seed=0).fit(healthy.iloc[:n])
    # the lag filters run over the history (they start cold at the first row given)
    res = twin.residuals(healthy, standardized=True).iloc[n:]
    assert list(res.columns) == ["temperature", "vibration", "pressure"]
    # seed 7 stops the pump in both parts; the temperature swings by tens of °C with load and
    # the twin explains it to a few σ of noise
    assert healthy["temperature"].iloc[n:].std() > 5
    assert res.abs().quantile(0.999).max() < 8
    assert twin.resid_std_["temperature"] < 1.0


def test_thermal_lag_is_modelled(healthy):
    n = len(healthy) * 2 // 3
    lagged = TwinModel(use_other_sensors=False).fit(healthy.iloc[:n])
    instant = TwinModel(use_other_sensors=False, taus_s=()).fit(healthy.iloc[:n])
    err = lambda m: m.residuals(healthy)["temperature"].iloc[n:].abs().mean()  # noqa: E731
    assert err(lagged) < 0.5 * err(instant)


def test_leak_shows_in_pressure_residual():
    res = simulate_fleet(assets=1, hours=10.0, seed=5, start="2026-02-10 00:00:00", fault_rate=0,
                         faults=[{"asset_id": "pump-01", "kind": "leak",
                                  "onset": "2026-02-10 08:00:00", "duration_s": 7200}])
    df = res.readings
    twin = TwinModel().fit(df)  # label column: only healthy rows are learned from
    r = twin.residuals(df, standardized=True)["pressure"]
    late_leak = (df["label"] == "leak") & (df["timestamp"] >= pd.Timestamp("2026-02-10 09:00"))
    assert r[late_leak].median() < -5
    assert r[df["label"] == "healthy"].abs().median() < 1


def test_streaming_matches_batch(healthy):
    twin = TwinModel().fit(healthy.iloc[:20000])
    part = healthy.iloc[20000:21000]
    mem = {}
    one = pd.DataFrame([twin.residual_one(x, mem) for x in part.to_dict("records")])
    assert np.allclose(one.to_numpy(), twin.residuals(part).to_numpy(), atol=1e-8)


def test_generic_sensor_columns_without_state():
    rng = np.random.default_rng(0)
    base = rng.normal(size=2000).cumsum() / 10
    df = pd.DataFrame({"A": base + rng.normal(0, 0.05, 2000), "B": 2 * base + rng.normal(0, 0.05, 2000),
                       "anomaly": 0})
    twin = TwinModel().fit(df.iloc[:1000])
    assert twin.sensors_ == ["A", "B"] and twin.state_ == []
    bad = df.iloc[1000:].copy()
    bad["B"] += 1.0
    assert twin.residuals(bad, standardized=True)["B"].abs().median() > 5
    assert twin.residuals(df.iloc[1000:], standardized=True)["B"].abs().median() < 2


def test_seeded_subsampling_is_reproducible(healthy):
    a = TwinModel(max_rows=5000, seed=1).fit(healthy)
    b = TwinModel(max_rows=5000, seed=1).fit(healthy)
    c = TwinModel(max_rows=5000, seed=2).fit(healthy)
    assert np.array_equal(a.coef_["pressure"], b.coef_["pressure"])
    assert not np.array_equal(a.coef_["pressure"], c.coef_["pressure"])
    assert pickle.loads(pickle.dumps(a)).expected(healthy.iloc[:10]).equals(a.expected(healthy.iloc[:10]))


def test_errors():
    with pytest.raises(NotFittedError):
        TwinModel().expected(pd.DataFrame({"temperature": [1.0]}))
    with pytest.raises(ValueError, match="missing"):
        TwinModel(sensors=["nope"]).fit(pd.DataFrame({"temperature": np.arange(20.0)}))
    with pytest.raises(ValueError, match="at least 10"):
        TwinModel().fit(pd.DataFrame({"temperature": [1.0, 2.0]}))


def test_per_asset_models_on_a_fleet():
    df = simulate_fleet(assets=2, hours=8.0, seed=7, start="2026-02-10 00:00:00",
                        fault_rate=0.0).readings
    train = df[df["timestamp"] < pd.Timestamp("2026-02-10 06:00")]
    fleet = TwinModel(per_asset=True).fit(train)
    pooled = TwinModel(per_asset=False).fit(train)
    assert sorted(fleet.assets_) == ["pump-01", "pump-02"] and pooled.assets_ == {}
    err = lambda m: m.residuals(df).abs().mean()  # noqa: E731
    assert (err(fleet) < err(pooled)).all()
    # streaming picks the asset's own model too
    part = df[df["asset_id"] == "pump-02"].iloc[:500]
    mem = {}
    one = pd.DataFrame([fleet.residual_one(x, mem) for x in part.to_dict("records")])
    assert np.allclose(one.to_numpy(), fleet.residuals(part).to_numpy(), atol=1e-8)
    # an asset never seen falls back to the fleet-wide model
    other = part.assign(asset_id="pump-99")
    assert np.allclose(fleet.expected(other).to_numpy(), pooled.expected(other).to_numpy())


def test_covers_tells_when_the_twin_extrapolates(healthy):
    n = len(healthy) * 2 // 3
    twin = TwinModel().fit(healthy.iloc[:n])
    lo, hi = twin.state_range_["load"]
    row = healthy.iloc[0].to_dict()
    assert twin.covers({**row, "load": (lo + hi) / 2})
    assert not twin.covers({**row, "load": hi + 0.5 * (hi - lo)})
    assert twin.covers({**row, "load": None})          # unknown state: no reason to refuse


def _plant(n, seed):
    rng = np.random.default_rng(seed)
    load = np.clip(np.cumsum(rng.normal(0, 0.02, n)) + 0.6, 0.1, 1.0)
    return pd.DataFrame({"Load %": load,
                         "flow l/min": 30 * load + rng.normal(0, 0.3, n),
                         "motor A": 2 + 3 * load + rng.normal(0, 0.05, n),
                         "bearing g": 0.02 + 0.01 * load + rng.normal(0, 0.001, n)})


def test_learned_twin_on_arbitrary_columns_round_trips_through_json():
    import json

    from twinlib.twin import LearnedTwin

    df = _plant(2000, 0)
    twin = LearnedTwin(state=["Load %"]).fit(df.iloc[:1000])
    assert twin.measured_ == ["flow l/min", "motor A", "bearing g"]
    data = json.loads(json.dumps(twin.to_dict()))          # plain JSON, no pickle
    again = LearnedTwin.from_dict(data)
    test = df.iloc[1000:]
    pd.testing.assert_frame_equal(again.residuals(test, standardized=True),
                                  twin.residuals(test, standardized=True))
    # healthy unseen rows: residuals about 1 σ (the σ is out-of-fold, so not too small)
    z = twin.residuals(test, standardized=True)
    assert 0.6 < float(z.abs().mean().mean()) < 1.5
    # a leak: flow low for the load and the current — only flow moves much
    leak = test.assign(**{"flow l/min": test["flow l/min"] - 3.0})
    zl = twin.residuals(leak, standardized=True).mean()
    assert zl["flow l/min"] < -4 and abs(zl["bearing g"]) < 2
    # a missing input counts as its training mean (no NaN spreads to the other signals)
    gap = test.copy()
    gap.loc[gap.index[:10], "motor A"] = np.nan
    assert np.isfinite(twin.predict(gap)["flow l/min"]).all()


def test_learned_twin_refuses_bad_input():
    from twinlib.twin import LearnedTwin, NotFittedError

    with pytest.raises(NotFittedError):
        LearnedTwin().predict(_plant(50, 1))
    with pytest.raises(ValueError, match="missing"):
        LearnedTwin(measured=["nope"]).fit(_plant(50, 1))
    with pytest.raises(ValueError, match="at least"):
        LearnedTwin().fit(_plant(5, 1))
    with pytest.raises(ValueError, match="not a LearnedTwin"):
        LearnedTwin.from_dict({"type": "TwinModel"})
    twin = LearnedTwin(state=["Load %"]).fit(_plant(200, 1))
    with pytest.raises(ValueError, match="missing"):
        twin.predict(_plant(50, 2).drop(columns=["motor A"]))
