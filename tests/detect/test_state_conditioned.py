"""CUSUM, PCA and the isolation forest given the kind's state signals (load, speed, ambient):
they score what the operating state does not explain, batch and streaming alike."""
import numpy as np
import pandas as pd
import pytest

from twinlib.detect.detectors import make_detector
from twinlib.detect.detectors._prep import STATE_LAGS_S
from twinlib.twin import ewm_causal

STATE = ("load", "speed", "ambient")
#: the twin's lag bank at one reading a minute, as default_fleet_detectors(cadence_s=60) sets it
LAGS = tuple(t / 60.0 for t in STATE_LAGS_S)
SETTINGS = {"cusum": {"k": 1.0, "state_lags": LAGS},
            "pca": {"n_components": 0.9, "refit_every": 10**6, "state_lags": LAGS},
            "iforest": {"n_estimators": 50, "seed": 0, "refit_every": 10**6, "state_lags": LAGS}}


def pump(n, seed):
    """A healthy pump whose duty changes: load steps between four levels (every fold of the
    training rows sees each), a lagged motor temperature, a cycling ambient."""
    rng = np.random.default_rng(seed)
    load = np.repeat(rng.choice([0.4, 0.6, 0.8, 1.0], n // 60 + 1), 60)[:n]
    speed = 3000 * np.sqrt(load)
    ambient = 20 + 2 * np.sin(np.arange(n) / 60)
    temp = ambient + 10 + ewm_causal(30 * load, 1 - np.exp(-1 / 15)) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"temperature": temp,
                         "vibration": 0.2 + 0.5 * load + rng.normal(0, 0.01, n),
                         "pressure": 40 + 50 * load + rng.normal(0, 0.3, n),
                         "load": load, "speed": speed, "ambient": ambient})


@pytest.fixture(scope="module")
def data():
    df = pump(4000, 7)
    return df.iloc[:2000].reset_index(drop=True), df.iloc[2000:].reset_index(drop=True)


def flagged(det, df):
    return det.predict(df).astype(bool)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_duty_changes_do_not_alarm(name, data):
    train, test = data
    cond = make_detector(name, **SETTINGS[name], q=1.0, state_columns=STATE).fit(train)
    assert cond.state_ == list(STATE) and cond.columns_ == ["temperature", "vibration", "pressure"]
    assert flagged(cond, test).mean() < 0.01


def test_a_leak_at_normal_levels_is_found_by_state_conditioned_pca(data):
    train, test = data
    cond = make_detector("pca", **SETTINGS["pca"], q=1.0, state_columns=STATE).fit(train)
    assert not flagged(cond, test).any()
    # a leak: pressure 3 bar low — inside its normal range, but not at this load
    leak = test.copy()
    leak.loc[1000:, "pressure"] -= 3.0
    assert flagged(cond, leak)[1100:].mean() > 0.9


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_streaming_after_fit_equals_batch_with_state(name, data):
    train, test = data
    det = make_detector(name, **SETTINGS[name], state_columns=STATE).fit(train)
    part = test.iloc[:600]
    batch = det.score(part)
    live = []
    for x in part.to_dict("records"):
        live.append(det.score_one(x))
        det.learn_one(x)
    assert np.allclose(live, batch, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_without_state_columns_in_the_data_nothing_changes(name, data):
    train, test = data
    cols = ["temperature", "vibration", "pressure"]
    plain = make_detector(name, **SETTINGS[name]).fit(train[cols])
    named = make_detector(name, **SETTINGS[name], state_columns=STATE).fit(train[cols])
    assert named.state_ == []
    assert np.array_equal(plain.score(test[cols]), named.score(test[cols]))
    assert plain.threshold_ == named.threshold_


@pytest.mark.parametrize("name", ["pca", "iforest"])
def test_no_opinion_outside_the_trained_state_range(name, data):
    train, test = data
    det = make_detector(name, **SETTINGS[name], state_columns=STATE).fit(train)
    stopped = test.iloc[:300].copy()
    stopped[["load", "speed"]] = 0.0            # a stop the training rows never showed
    stopped["temperature"] -= 20.0
    assert np.all(det.score(stopped)[5:] == 0.0)


def test_state_columns_missing_at_scoring_are_refused(data):
    train, test = data
    det = make_detector("pca", state_columns=STATE).fit(train)
    with pytest.raises(ValueError, match="state columns missing"):
        det.score(test.drop(columns=["load"]))
