"""Re-learning a new normal (``relearn``) and tail-extrapolated thresholds (``horizon``)."""
import numpy as np
import pandas as pd
import pytest

from twinlib.detect.detectors import LearnedTwinDetector, MSETDetector, make_detector
from twinlib.detect.detectors.base import tail_threshold

COLS = ["a", "b", "c"]
DETS = {"mset": MSETDetector, "ltwin": LearnedTwinDetector}


def correlated(n, rng):
    z = rng.normal(size=n)
    return np.column_stack([z, 0.8 * z, -0.5 * z]) + rng.normal(0, 0.3, (n, 3))


def frame(A):
    return pd.DataFrame(A, columns=COLS)


@pytest.fixture(scope="module")
def train():
    return frame(correlated(400, np.random.default_rng(1)))


def stepped(seed=2, n=1200, at=200, size=3.0):
    """Healthy rows, then from ``at`` on signal c sits ``size`` higher for good (a new normal)."""
    A = correlated(n, np.random.default_rng(seed))
    A[at:, 2] += size
    return frame(A)


def ramped(seed=3, n=1200, at=200, rate=0.01):
    """From ``at`` on, signal c grows by ``rate`` per reading without end (a growing fault)."""
    A = correlated(n, np.random.default_rng(seed))
    A[at:, 2] += rate * np.arange(n - at)
    return frame(A)


def stream(det, df):
    scores = []
    for x in df.to_dict("records"):
        scores.append(det.score_one(x))
        det.learn_one(x)
    return np.array(scores)


@pytest.mark.parametrize("name", sorted(DETS))
def test_a_step_to_a_new_stable_level_is_relearned(name, train):
    det = DETS[name](relearn=200).fit(train)
    df = stepped()
    flags = det.predict(df).astype(bool)
    assert flags[230:380].all()                     # the step alarms while it is new ...
    assert len(det.last_relearns_) == 1
    at = det.last_relearns_[0]
    assert 390 <= at <= 500                         # ... for at least `relearn` readings ...
    assert flags[at + 30:].mean() < 0.02            # ... then it is the new normal
    # without the policy the same detector alarms to the end
    plain = DETS[name]().fit(train).predict(df).astype(bool)
    assert plain[at + 30:].mean() > 0.95


@pytest.mark.parametrize("name", sorted(DETS))
def test_a_slowly_growing_fault_is_never_relearned(name, train):
    det = DETS[name](relearn=200).fit(train)
    df = ramped()
    flags = det.predict(df).astype(bool)
    assert det.last_relearns_ == []
    onset = 200 + int(np.argmax(flags[200:]))
    assert onset < 600 and flags[onset:].mean() > 0.98   # it keeps alarming to the end


@pytest.mark.parametrize("name", sorted(DETS))
def test_the_old_normal_stays_normal_after_relearning(name, train):
    """The re-fit keeps the training rows: a return to the old operating point is not a fault."""
    A = stepped(n=1400).to_numpy().copy()
    A[900:, 2] -= 3.0                               # back where it was
    det = DETS[name](relearn=200).fit(train)
    flags = det.predict(frame(A)).astype(bool)
    assert len(det.last_relearns_) == 1
    assert flags[930:].mean() < 0.02


@pytest.mark.parametrize("name", sorted(DETS))
def test_relearning_streaming_equals_batch(name, train):
    """The live detector re-learns at the same reading and flags what batch scoring flags."""
    df = stepped()
    det = DETS[name](relearn=200).fit(train)
    batch = det.score(df)
    relearnt = list(det.last_relearns_)
    live = stream(det, df)
    assert np.allclose(live, batch, rtol=1e-9, atol=1e-9)
    assert [r - len(train) for r in det.relearns_] == relearnt and relearnt
    assert np.array_equal(live > det.threshold_, batch > det.threshold_)


def test_relearning_also_works_after_a_streaming_warm_up():
    rng = np.random.default_rng(5)
    det = MSETDetector(relearn=200, grace=400)
    stream(det, frame(correlated(400, rng)))
    live = stream(det, stepped(seed=6))
    assert len(det.relearns_) == 1
    assert (live[det.relearns_[0] - 400 + 30:] > det.threshold_).mean() < 0.02


def test_relearn_grace_means_the_training_length(train):
    det = MSETDetector(relearn="grace", grace=300).fit(train)
    det.predict(stepped(n=1400))
    assert len(det.last_relearns_) == 1 and det.last_relearns_[0] >= 200 + 300 - 1


@pytest.mark.parametrize("bad", [0, 3, "soon"])
def test_a_bad_relearn_setting_is_refused(bad, train):
    with pytest.raises((ValueError, TypeError)):
        MSETDetector(relearn=bad).fit(train)


def test_tail_threshold_extrapolates_and_ignores_one_extreme_value():
    rng = np.random.default_rng(0)
    s = np.abs(rng.normal(size=2000))
    week, day = tail_threshold(s, 10_080), tail_threshold(s, 1_440)
    assert week > day > np.quantile(s, 0.99)
    # healthy rows like these cross the week's level about once a week or less
    fresh = np.abs(rng.normal(size=100_800))
    assert (fresh > week).sum() <= 10 * 2
    # the largest training score alone does not set it (a max-based threshold would jump)
    spiked = s.copy()
    spiked[7] = 40.0
    assert tail_threshold(spiked, 1_000_000) < 1.5 * tail_threshold(s, 1_000_000)
    with pytest.raises(ValueError):
        tail_threshold(s, 1.0)


@pytest.mark.parametrize("name", ["mset", "ltwin", "pca", "iforest", "zscore", "cusum"])
def test_horizon_sets_the_threshold_for_every_detector(name, train):
    """``horizon`` is one of the threshold policies of the shared contract, not a special case."""
    short = make_detector(name, horizon=100).fit(train)
    long = make_detector(name, horizon=1_000_000).fit(train)
    assert long.threshold_ > short.threshold_
    assert long.clone().horizon == 1_000_000


@pytest.mark.parametrize("name", sorted(DETS))
@pytest.mark.parametrize("relearn", [None, 200])
def test_persisted_scores_streaming_equal_batch(name, relearn, train):
    """``persist`` (an EWMA of the score, the threshold from unsmoothed out-of-fold scores) runs
    the same in batch and live, with and without re-learning."""
    df = stepped()
    det = DETS[name](persist=0.1, relearn=relearn).fit(train)
    plain = DETS[name](relearn=relearn).fit(train)
    assert det.threshold_ == pytest.approx(plain.threshold_)    # the threshold is not smoothed
    batch = det.score(df)
    live = stream(det, df)
    assert np.allclose(live, batch, rtol=1e-9, atol=1e-9)
    # a lone extreme reading does not alarm once persisted; a step does
    spike = frame(correlated(600, np.random.default_rng(9)))
    spike.iloc[300, 2] += 6.0
    fresh = DETS[name](persist=0.1).fit(train)
    assert plain.clone().fit(train).predict(spike)[300:310].any()
    assert not fresh.predict(spike)[250:350].any()
    assert fresh.predict(df)[260:380].all()
