"""Training keeps only the features the classifiers read, and fits exactly what it fitted before.

Features used to be computed for every training reading of the fleet (millions of rows × ~90
columns) and then subsampled; now they are computed asset by asset and only the rows the fit
reads are kept (``FaultClassifier.training_rows``, ``FeatureBuilder.transform(…, rows=…)``), and
the twin builds its design matrix for its subsample only. These tests rebuild the old way —
every row's features first, then the selection — and require the very same bytes, in the same
order, from the new path.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from xgboost import XGBClassifier

from twinlib import twin as twin_module
from twinlib.models.classifiers import FaultClassifier, _stride_rows, class_labels
from twinlib.models.features import FeatureBuilder, FeatureSpec, _duty_parts
from twinlib.models.labels import RECOVERY, with_recovery
from twinlib.models.train import split_history, train_models
from twinlib.twin import TwinModel

CAP = 4000  # well under the training rows: the stride and the calibration both subsample


def _bytes(a) -> bytes:
    return np.ascontiguousarray(np.asarray(a)).tobytes()


def _same(a, b) -> bool:
    """Identical arrays: shape, dtype and every bit (NaNs included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and _bytes(a) == _bytes(b)


@pytest.fixture()
def record(monkeypatch):
    """Every array the two estimators are fitted on or asked to score, in call order."""
    calls = []
    for cls in (RandomForestClassifier, XGBClassifier):
        real_fit, real_proba = cls.fit, cls.predict_proba

        def fit(self, X, y, *args, _real=real_fit, sample_weight=None, **kw):
            calls.append(("fit", np.array(X), np.array(y), np.array(sample_weight)))
            return _real(self, X, y, *args, sample_weight=sample_weight, **kw)

        def proba(self, X, *args, _real=real_proba, **kw):
            calls.append(("proba", np.array(X)))
            return _real(self, X, *args, **kw)

        monkeypatch.setattr(cls, "fit", fit)
        monkeypatch.setattr(cls, "predict_proba", proba)
    return calls


@pytest.fixture(scope="module")
def history(rich_fleet):
    """The six-pump history, shuffled across assets (rows of a fleet arrive interleaved) and
    with a non-default index, so position, index label and time order all differ."""
    df = rich_fleet.readings
    df = df.iloc[np.random.default_rng(5).permutation(len(df))]
    return df.set_index(pd.RangeIndex(10, 10 + 3 * len(df), 3))


def _old_selection(readings: pd.DataFrame, full: pd.DataFrame, clf: FaultClassifier):
    """Today's selection, written out: every row's features, the labelled rows, the stride,
    and per calibration fold the held-out rows it scores — as (X, codes, [X_held…])."""
    labelled = (readings["label"].notna().to_numpy()
                & (readings["label"].astype(str) != RECOVERY).to_numpy())
    X_all, y_all = full[labelled], class_labels(readings["label"][labelled], clf.classes)
    assets_all = readings["asset_id"].to_numpy()[labelled]
    keep = _stride_rows(assets_all, y_all, clf.max_train_rows)
    y = y_all[keep]
    classes = [c for c in clf.classes if c in set(y)]
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[c] for c in y])
    names = pd.unique(assets_all[keep])
    n_folds = min(clf.calibration_folds, len(names))
    order = np.random.default_rng(clf.seed).permutation(len(names))
    fold_of = {names[i]: k % n_folds for k, i in enumerate(order)}
    fit_fold = np.array([fold_of[a] for a in assets_all[keep]])
    all_fold = np.array([fold_of.get(a, -1) for a in assets_all])
    held_X = []
    for k in range(n_folds):
        if len(np.unique(codes[fit_fold != k])) < 2:
            continue
        held = np.flatnonzero(all_fold == k)[::clf.calibration_every]
        held = held[np.isin(y_all[held], list(index))]
        if len(held):
            held_X.append(X_all.iloc[held].to_numpy())
    return X_all.iloc[keep].to_numpy(), codes, held_X


def test_a_feature_subset_is_the_whole_frames_rows_in_the_order_asked(history):
    builder = FeatureBuilder(seed=0).fit(history)
    full = builder.transform(history)
    rows = np.random.default_rng(1).choice(len(history), 5000, replace=False)  # any order
    part = builder.transform(history, rows=rows)
    assert list(part.columns) == list(full.columns)
    assert part.index.equals(history.index[rows])
    assert _same(part.to_numpy(), full.iloc[rows].to_numpy())
    # an asset none of whose rows is asked for is not computed, and nothing else changes
    one = np.flatnonzero(history["asset_id"].to_numpy() == "pump-03")[:50]
    assert _same(builder.transform(history, rows=one).to_numpy(), full.iloc[one].to_numpy())
    assert builder.transform(history, rows=np.zeros(0, dtype=int)).shape == (0, full.shape[1])
    with pytest.raises(ValueError, match="outside"):
        builder.transform(history, rows=[len(history)])
    with pytest.raises(ValueError, match="positions"):
        builder.transform(history, rows=[0.5])


def test_the_classifier_is_fitted_on_the_same_bits_as_from_the_whole_frame(history, record):
    """New path (only the rows read) against the old one (all rows, then subsampled): the
    estimator's X, y and weights, and every calibration fold's held-out X, bit for bit."""
    readings = with_recovery(history)
    builder = FeatureBuilder(seed=0).fit(readings)
    full = builder.transform(readings)
    clf = FaultClassifier("rf", seed=0, max_train_rows=CAP)
    X_old, codes_old, held_old = _old_selection(readings, full, clf)
    assert len(held_old) >= 2 and len(X_old) < len(readings) // 10

    clf.fit(readings, builder=builder)  # no features given: only the rows read are computed
    fits = [c for c in record if c[0] == "fit"]
    probas = [c[1] for c in record if c[0] == "proba"]
    _, X, y, w = fits[0]
    assert _same(X, X_old) and _same(y, codes_old)
    assert _same(w, clf._weights(codes_old))
    assert len(probas) == len(held_old)
    for new, old in zip(probas, held_old):
        assert _same(new, old)
    assert clf.calibration_["applied"]
    assert len(clf.training_rows(readings)) < len(readings) // 2

    # the old call (every row's features passed in) fits the same estimator inputs
    record.clear()
    FaultClassifier("rf", seed=0, max_train_rows=CAP).fit(readings, builder=builder,
                                                          features=full)
    assert _same(record[0][1], X_old) and _same(record[0][2], codes_old)


def test_rows_missing_from_the_features_are_refused(history):
    readings = with_recovery(history)
    builder = FeatureBuilder(seed=0).fit(readings)
    clf = FaultClassifier("xgb", seed=0, max_train_rows=CAP)
    rows = clf.training_rows(readings)
    X = builder.transform(readings, rows=rows[1:])
    with pytest.raises(ValueError, match="lack rows"):
        clf.fit(readings, builder=builder, features=X, rows=rows[1:])
    with pytest.raises(ValueError, match="ascending"):
        clf.fit(readings, builder=builder, features=X, rows=rows[1:][::-1])


def test_train_models_fits_and_scores_what_the_whole_frame_gives(history, record, tmp_path):
    """End to end: ``train_models`` against the old path rebuilt from its split — the fitted
    X/y, the calibration's held-out rows and the held-out test matrix, bit for bit."""
    cards = train_models(history, tmp_path, kinds=("xgb",), seed=0, max_train_rows=CAP)
    readings = with_recovery(history)
    spec = FeatureSpec()
    split = split_history(readings, gap_s=spec.long_window_s, seed=0)
    assert split.to_dict() == cards["xgb"]["split"]
    train = readings[split.train_mask(readings)]
    builder = FeatureBuilder(spec.window_s, spec.long_window_s, spec.baseline_s, seed=0,
                             sensors=spec.sensors, state=spec.state).fit(train)
    clf = FaultClassifier("xgb", seed=0, max_train_rows=CAP)
    X_old, codes_old, held_old = _old_selection(train, builder.transform(train), clf)
    test_history = readings[readings["asset_id"].isin(split.test_assets).to_numpy()]
    test_rows = (split.test_mask(test_history) & test_history["label"].notna().to_numpy()
                 & (test_history["label"].astype(str) != RECOVERY).to_numpy())
    X_test_old = builder.transform(test_history)[test_rows].to_numpy()

    fits = [c for c in record if c[0] == "fit"]
    probas = [c[1] for c in record if c[0] == "proba"]
    assert _same(fits[0][1], X_old) and _same(fits[0][2], codes_old)
    assert [len(p) for p in probas[:-1]] == [len(h) for h in held_old]
    for new, old in zip(probas[:-1], held_old):
        assert _same(new, old)
    assert _same(probas[-1], X_test_old)  # the held-out score's matrix
    assert cards["xgb"]["training_data"]["rows_used"] == len(X_old)


def test_the_twin_learns_from_its_subsample_of_the_full_design_matrix(history, monkeypatch):
    """The twin's Gram matrices are built from the rows of the full design matrix its seeded
    subsample picks (same bits, same memory layout), and the duty floors are unchanged."""
    seen = []
    real = twin_module._Gram.__init__

    def gram(self, X, y):
        seen.append((np.array(X, order="K"), bool(X.flags.c_contiguous), np.array(y)))
        real(self, X, y)

    monkeypatch.setattr(twin_module._Gram, "__init__", gram)
    max_rows = 20_000
    model = TwinModel(sensors=["temperature", "vibration", "pressure"],
                      state=("load", "speed", "ambient"), use_other_sensors=False,
                      per_asset=False, max_rows=max_rows, seed=4).fit(history)
    full = model.features(history).to_numpy(dtype=float)  # the design matrix of every row
    lab = history["label"]
    healthy = (lab.isna() | (lab.astype(str) == "healthy")).to_numpy()
    rng = np.random.default_rng(4)
    assert len(seen) == 3
    for s, (X, c_order, y) in zip(model.sensors_, seen):
        y_all = history[s].to_numpy(dtype=float) - model._offset(history, s)
        pos = np.flatnonzero(healthy & ~np.isnan(y_all))
        assert len(pos) > max_rows
        pos = np.sort(rng.choice(pos, max_rows, replace=False))
        assert c_order == full[pos].flags.c_contiguous
        assert _same(X, full[pos]) and _same(y, y_all[pos])

    builder = FeatureBuilder(seed=0).fit(history)
    twin = builder.twin_
    sensors = list(builder.spec.sensors)
    h = history[healthy]
    duty = _duty_parts(twin, h, twin.expected(h)[sensors], sensors)
    for s in sensors:
        old = max(0.2 * float(np.nanmedian(np.abs(duty[s].to_numpy()))), 1e-9)
        assert builder.duty_floor_[s] == old


def test_recovery_labels_leave_the_given_history_untouched(rich_fleet):
    """``with_recovery`` relabels a shallow copy: the caller's frame keeps its labels."""
    df = rich_fleet.readings
    before = df["label"].copy()
    out = with_recovery(df)
    assert (out["label"] == RECOVERY).sum() > 0
    assert df["label"].equals(before) and not (df["label"] == RECOVERY).any()
    assert list(out.columns) == list(df.columns) and out.index.equals(df.index)
    out.loc[out.index[:5], "temperature"] = -1.0  # writing to the copy never reaches the input
    assert (df["temperature"].iloc[:5] != -1.0).all()
