"""Fault-kind classifiers (RandomForest and XGBoost) over the causal rolling features.

A :class:`FaultClassifier` owns its :class:`~twinlib.models.features.FeatureBuilder` (with the
twin fitted on healthy training rows) and its estimator, so ``predict(readings)`` takes raw
readings of one or more assets and returns one fault class per reading.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from twinlib.models.features import FeatureBuilder
from twinlib.models.labels import CLASSES, RECOVERY, class_labels

__all__ = ["CLASSES", "MODEL_KINDS", "FaultClassifier", "class_labels", "CLASS_WEIGHTS",
           "CALIBRATIONS", "rows_read"]

#: Accepted ``calibration`` methods.
CALIBRATIONS = ("isotonic", "sigmoid", "none")

#: Accepted ``class_weight`` words: "balanced" (inverse frequency, the default) or "none".
CLASS_WEIGHTS = ("balanced", "none")

#: Model kind → file stem under the models directory.
MODEL_KINDS = {"rf": "fault_detection_rf", "xgb": "fault_detection_xgb"}



def rows_read(classifiers, readings: pd.DataFrame) -> np.ndarray:
    """Ascending positions of the readings whose features any of ``classifiers`` (unfitted
    :class:`FaultClassifier`) reads when fitted on ``readings``: the union of their
    :meth:`~FaultClassifier.training_rows`, the only rows whose features need computing."""
    return np.unique(np.concatenate([np.zeros(0, dtype="int64")]
                                    + [c.training_rows(readings) for c in classifiers]))

class FaultClassifier:
    """Classifies each reading's fault kind from the features of its asset's recent history.

    ``kind`` is ``"rf"`` (scikit-learn RandomForest) or ``"xgb"`` (XGBoost ``hist``). Training
    uses at most ``max_train_rows`` rows: features are computed on every reading (windows need
    the full history), then an even stride per asset and class keeps the cap — neighbouring
    one-second readings are nearly duplicates, so the stride loses little — with the budget
    shared between classes so rare faults keep more of their rows. Classes are then weighted
    inversely to their frequency because healthy readings still dominate (``class_weight``:
    ``"balanced"``, ``"none"``, or a mapping class → extra weight multiplied in, to favour a
    rare fault). ``n_jobs=None`` uses two threads for the forest and one for XGBoost (see
    ``_estimator``). ``classes`` lists the labels the classifier may learn (default: the
    simulator's classes; ``None``: whatever the label column holds). Rows labelled
    ``recovery`` are never learned from.

    ``calibration`` (``"isotonic"``, the default, ``"sigmoid"`` or ``"none"``): the class
    probabilities are calibrated by cross-validation on the training data, grouped by asset
    (neighbouring readings of one asset are near-duplicates, so a random split would flatter):
    per fold, a model fitted on the other assets scores every ``calibration_every``-th labelled
    reading of the held-out assets (the training fleet's own class mix, not the class-balanced
    fitting sample); one calibrator per class maps its out-of-fold probability to the observed
    frequency, and the model fitted on all rows is served through them (rows renormalised to sum
    to 1). With fewer than two training assets there is nothing to hold out and the raw
    probabilities are served (``calibration_["applied"]`` says which).
    """

    def __init__(self, kind: str = "rf", *, seed: int = 0, window_s: int = 300,
                 long_window_s: int = 1800, baseline_s: int = 21600, max_train_rows: int = 60_000,
                 n_jobs: int | None = None, class_weight="balanced", classes=CLASSES,
                 sensors=None, state=None, calibration: str = "isotonic",
                 calibration_folds: int = 3, calibration_every: int = 5):
        self.kind = kind
        self.seed = seed
        self.window_s = window_s
        self.long_window_s = long_window_s
        self.baseline_s = baseline_s
        self.max_train_rows = max_train_rows
        self.n_jobs = n_jobs
        self.class_weight = class_weight
        self.classes = classes
        self.sensors = sensors
        self.state = state
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.calibration_every = calibration_every

    @classmethod
    def for_spec(cls, kind: str, spec, **options) -> "FaultClassifier":
        """A classifier of ``kind`` with a :class:`~twinlib.models.features.FeatureSpec`'s
        windows, sensors and state signals (``options``: the other settings)."""
        return cls(kind, window_s=spec.window_s, long_window_s=spec.long_window_s,
                   baseline_s=spec.baseline_s, sensors=spec.sensors, state=spec.state, **options)

    def _estimator(self):
        if self.kind == "rf":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(
                n_estimators=100, min_samples_leaf=5, max_features="sqrt", max_samples=0.5,
                n_jobs=self.n_jobs or 2, random_state=self.seed,
            )
        if self.kind == "xgb":
            from xgboost import XGBClassifier

            return XGBClassifier(
                n_estimators=100, max_depth=5, learning_rate=0.15, subsample=0.8,
                colsample_bytree=0.8, tree_method="hist", max_bin=64,
                # One thread: on 2 shared cores XGBoost's OpenMP threads spin against other
                # processes (measured 1.6 s with one thread, 12.5 s with two under load).
                n_jobs=self.n_jobs or 1,
                random_state=self.seed, eval_metric="mlogloss",
            )
        raise ValueError(f"unknown model kind {self.kind!r}; expected one of {sorted(MODEL_KINDS)}")

    def training_rows(self, readings: pd.DataFrame) -> np.ndarray:
        """Positions (ascending) of the readings whose features :meth:`fit` reads: the
        per-asset stride the estimator is fitted on and the rows the calibration scores out of
        fold. They follow from the labels, the assets and the settings alone, so only these
        rows' features need to be kept (``builder.transform(readings, rows=…)``, then
        ``fit(readings, builder=…, features=…, rows=…)``)."""
        return self._plan(readings).rows

    def fit(self, readings: pd.DataFrame, *, builder: FeatureBuilder | None = None,
            features: pd.DataFrame | None = None, rows=None) -> "FaultClassifier":
        """Fit on labelled readings (``label`` column); returns ``self``.

        ``builder`` (fitted) and ``features`` may be passed in so that several classifiers
        trained on the same rows compute the features once: ``features`` is the builder's
        output for every reading, or — with ``rows``, ascending positions in ``readings`` —
        for those readings only, which must include :meth:`training_rows`. Without
        ``features``, only the rows the fit reads are kept (a fleet's full feature matrix is
        never built); the fitted model is the same either way.
        """
        if "label" not in readings.columns or readings["label"].isna().all():
            raise ValueError("training readings need a 'label' column with fault labels")
        estimator = self._estimator()  # fail fast on a bad kind
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, not {self.calibration!r}")
        if builder is None:
            builder = FeatureBuilder(self.window_s, self.long_window_s, self.baseline_s,
                                     seed=self.seed, sensors=self.sensors,
                                     state=self.state).fit(readings)
            features = None
        spec = builder.spec
        if (spec.window_s, spec.long_window_s, spec.baseline_s) != (
                self.window_s, self.long_window_s, self.baseline_s):
            raise ValueError("the feature builder's windows differ from the classifier's")
        self.builder_ = builder
        plan = self._plan(readings)
        if features is None:
            features, rows = builder.transform(readings, rows=plan.rows), plan.rows
        take = _row_lookup(features, rows, len(readings))
        take(plan.rows)  # fail fast when a row the fit reads is missing
        y, codes = plan.y[plan.keep], plan.codes
        self.source_class_counts_ = {c: int(n) for c, n in
                                     zip(*np.unique(plan.y, return_counts=True))}
        self.classes_ = plan.classes
        X = take(plan.positions[plan.keep])
        weights = self._weights(codes)
        estimator.fit(X.to_numpy(), codes, sample_weight=weights)
        self.estimator_ = estimator
        self.calibrators_ = None
        self.calibration_ = {"method": self.calibration, "applied": False}
        if self.calibration != "none":
            self._fit_calibration(X.to_numpy(), codes, weights, plan, take)
        self.feature_names_ = list(self.builder_.feature_names_)
        self.n_train_rows_ = int(len(y))
        self.n_source_rows_ = int(len(plan.positions))
        self.train_class_counts_ = {c: int((y == c).sum()) for c in self.classes_}
        return self

    def _plan(self, readings: pd.DataFrame) -> "_Plan":
        """Which rows the fit reads, from the labels and assets alone (no features)."""
        if "label" not in readings.columns or readings["label"].isna().all():
            raise ValueError("training readings need a 'label' column with fault labels")
        labelled = (readings["label"].notna().to_numpy()
                    & (readings["label"].astype(str) != RECOVERY).to_numpy())
        positions = np.flatnonzero(labelled)
        y = class_labels(readings["label"][labelled], self.classes)
        assets = (readings["asset_id"].to_numpy()[labelled] if "asset_id" in readings.columns
                  else np.zeros(len(y)))
        keep = _stride_rows(assets, y, self.max_train_rows)
        kept = y[keep]
        order = list(self.classes) if self.classes is not None else []
        order += sorted(set(kept) - set(order))
        classes = np.array([c for c in order if c in set(kept)])
        if len(classes) < 2:
            raise ValueError(f"training data has a single class {list(classes)}; "
                             "simulate more hours or a higher fault rate")
        index = {c: i for i, c in enumerate(classes)}
        codes = np.fromiter((index[c] for c in kept), dtype="int64", count=len(kept))
        plan = _Plan(positions, y, assets, keep, classes, index, codes)
        if self.calibration != "none":
            self._plan_calibration(plan)
        used = [keep] + [held for _, _, held in plan.folds]
        plan.rows = positions[np.unique(np.concatenate(used))]
        return plan

    def _plan_calibration(self, plan: "_Plan") -> None:
        """The calibration's folds (grouped by asset) and the rows each one scores."""
        groups = plan.assets[plan.keep]
        names = pd.unique(groups)
        plan.n_folds = min(int(self.calibration_folds), len(names))
        if plan.n_folds < 2:
            plan.reason = "fewer than two training assets"
            return
        order = np.random.default_rng(self.seed).permutation(len(names))
        fold_of = {names[i]: k % plan.n_folds for k, i in enumerate(order)}
        fit_fold = np.array([fold_of[a] for a in groups])
        all_fold = np.array([fold_of.get(a, -1) for a in plan.assets])
        plan.every = max(1, int(self.calibration_every))
        for k in range(plan.n_folds):
            train = fit_fold != k
            if len(np.unique(plan.codes[train])) < 2:
                continue
            held = np.flatnonzero(all_fold == k)[::plan.every]
            held = held[np.isin(plan.y[held], list(plan.index))]
            if len(held):
                plan.folds.append((k, train, held))
        if not plan.folds:
            plan.reason = "no held-out rows"

    def _fit_calibration(self, X, codes, weights, plan: "_Plan", take) -> None:
        """Out-of-fold probabilities, grouped by asset → one calibrator per class."""
        if plan.reason:
            self.calibration_["reason"] = plan.reason
            return
        probs, truth, fold_ids = [], [], []
        for k, train, held in plan.folds:
            est = self._estimator()
            # a fold may miss a class: fit on the classes it has, place them in the full matrix
            present = np.unique(codes[train])
            remap = {c: i for i, c in enumerate(present)}
            est.fit(X[train], np.array([remap[c] for c in codes[train]]),
                    sample_weight=weights[train])
            p = np.zeros((len(held), len(self.classes_)))
            p[:, present] = est.predict_proba(take(plan.positions[held]).to_numpy())
            probs.append(p)
            truth.append(np.array([plan.index[c] for c in plan.y[held]]))
            fold_ids.append(np.full(len(held), k))
        P, t, f = np.vstack(probs), np.concatenate(truth), np.concatenate(fold_ids)
        n_folds, every = plan.n_folds, plan.every
        # A class seen held out in fewer than two folds, or in few rows, has no out-of-fold
        # picture of its own probabilities (its only assets were never scored by a model that
        # knew it): it keeps its raw probability rather than being mapped to its base rate.
        self.calibrators_ = []
        kept_raw = []
        for j, cls in enumerate(self.classes_):
            hit = t == j
            if len(np.unique(f[hit])) < 2 or hit.sum() < _MIN_CALIBRATION_ROWS:
                self.calibrators_.append(_Calibrator("identity", None))
                kept_raw.append(str(cls))
            else:
                self.calibrators_.append(_fit_calibrator(P[:, j], hit.astype("float64"),
                                                         self.calibration))
        Q = self._apply_calibration(P)
        self.calibration_.update(
            applied=True, folds=n_folds, rows=int(len(t)), every=every, raw_classes=kept_raw,
            brier_raw=float(np.mean(np.sum((P - np.eye(len(self.classes_))[t]) ** 2, axis=1))),
            brier_calibrated=float(np.mean(np.sum((Q - np.eye(len(self.classes_))[t]) ** 2,
                                                  axis=1))))

    def _apply_calibration(self, P: np.ndarray) -> np.ndarray:
        if not getattr(self, "calibrators_", None):
            return P
        Q = np.column_stack([c(P[:, j]) for j, c in enumerate(self.calibrators_)])
        Q = np.clip(Q, 0.0, 1.0)
        total = Q.sum(axis=1, keepdims=True)
        # a row every calibrator sends to 0 keeps its raw probabilities
        return np.where(total > 0, Q / np.where(total > 0, total, 1.0), P)

    def _weights(self, codes: np.ndarray) -> np.ndarray:
        cw = self.class_weight
        if cw is None or cw == "none":
            weights = np.ones(len(codes))
        elif cw == "balanced" or isinstance(cw, dict):
            weights = _balanced_weights(codes, len(self.classes_))
        else:
            raise ValueError(f"class_weight must be 'balanced', 'none' or a mapping, not {cw!r}")
        if isinstance(cw, dict):
            unknown = sorted(set(cw) - set(self.classes_))
            if unknown:
                raise ValueError(f"class_weight names classes not in the training data: {unknown}")
            extra = np.array([float(cw.get(c, 1.0)) for c in self.classes_])
            if (extra <= 0).any():
                raise ValueError("class weights must be positive")
            weights = weights * extra[codes]
        return weights

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise RuntimeError("FaultClassifier is not fitted; call fit() first")

    def features(self, readings: pd.DataFrame, rows=None) -> pd.DataFrame:
        """The feature matrix the classifier sees for ``readings`` (``rows``: only the readings
        at those positions, in that order — see :meth:`FeatureBuilder.transform`)."""
        self._check_fitted()
        return self.builder_.transform(readings, rows=rows)

    def predict_proba_features(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities (columns follow ``classes_``) for a precomputed feature matrix."""
        self._check_fitted()
        return self._apply_calibration(self.estimator_.predict_proba(X[self.feature_names_].to_numpy()))

    def predict_proba_raw_features(self, X: pd.DataFrame) -> np.ndarray:
        """The estimator's own (uncalibrated) probabilities, for comparison."""
        self._check_fitted()
        return self.estimator_.predict_proba(X[self.feature_names_].to_numpy())

    def decision_weights(self) -> np.ndarray:
        """One weight per class (``classes_`` order) that :meth:`decide` multiplies in; all 1
        unless :meth:`set_decision_weights` chose others (see :mod:`twinlib.models.decision`)."""
        self._check_fitted()
        w = getattr(self, "decision_weights_", None)
        return np.ones(len(self.classes_)) if w is None else np.asarray(w, dtype="float64")

    def set_decision_weights(self, weights, info: dict | None = None) -> None:
        """Set the decision weights (class → weight; classes not named keep 1) and what chose
        them (recorded on the model card as ``decision``)."""
        self._check_fitted()
        unknown = sorted(set(weights) - {str(c) for c in self.classes_})
        if unknown:
            raise ValueError(f"decision weights name classes the model does not know: {unknown}")
        w = np.array([float(weights.get(str(c), 1.0)) for c in self.classes_])
        if not np.isfinite(w).all() or (w <= 0).any():
            raise ValueError("decision weights must be positive numbers")
        self.decision_weights_ = w
        self.decision_ = {**(info or {}), "weights": {str(c): float(v)
                                                      for c, v in zip(self.classes_, w)}}

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class names for rows of this model's probabilities: the largest after the decision
        weights (:mod:`twinlib.models.decision`)."""
        return self.classes_[np.argmax(np.asarray(proba) * self.decision_weights(), axis=1)]

    def predict_features(self, X: pd.DataFrame) -> np.ndarray:
        """Class names for a precomputed feature matrix (the decision weights applied)."""
        return self.decide(self.predict_proba_features(X))

    def predict(self, readings: pd.DataFrame) -> np.ndarray:
        """One class name per reading, from that reading's (causal) features."""
        return self.predict_features(self.features(readings))

    def predict_proba(self, readings: pd.DataFrame) -> np.ndarray:
        return self.predict_proba_features(self.features(readings))

    def feature_importances(self) -> dict[str, float]:
        """Impurity/gain importances per feature, summing to 1 (descending)."""
        self._check_fitted()
        values = np.asarray(self.estimator_.feature_importances_, dtype="float64")
        total = values.sum() or 1.0
        pairs = sorted(zip(self.feature_names_, values / total), key=lambda p: -p[1])
        return {name: float(v) for name, v in pairs}


#: Held-out rows of a class below which it keeps its raw probability.
_MIN_CALIBRATION_ROWS = 50


class _Calibrator:
    """A fitted map from one class's raw probability to its observed frequency (picklable)."""

    def __init__(self, method: str, model):
        self.method = method
        self.model = model

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.method == "identity":
            return p
        if self.method == "isotonic":
            return self.model.predict(p)
        return self.model.predict_proba(_logit(p)[:, None])[:, 1]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit_calibrator(p: np.ndarray, hit: np.ndarray, method: str) -> _Calibrator:
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        return _Calibrator(method, IsotonicRegression(y_min=0.0, y_max=1.0,
                                                      out_of_bounds="clip").fit(p, hit))
    from sklearn.linear_model import LogisticRegression

    if hit.min() == hit.max():  # a class never (or always) seen held out: keep it as it is
        return _Calibrator("isotonic", _Constant(float(hit[0])))
    return _Calibrator(method, LogisticRegression(C=1e4).fit(_logit(p)[:, None], hit))


class _Constant:
    def __init__(self, value: float):
        self.value = value

    def predict(self, p: np.ndarray) -> np.ndarray:
        return np.full(len(p), self.value)


class _Plan:
    """What a fit reads, worked out before any feature: the labelled rows (``positions`` in
    the readings, their class names ``y`` and ``assets``), the stride ``keep`` (indices into
    them), the ``classes`` learned and the kept rows' class ``codes``, the calibration folds
    (``(fold, fit mask over keep, held-out indices)``), and ``rows``: every reading whose
    features are read."""

    def __init__(self, positions, y, assets, keep, classes, index, codes):
        self.positions, self.y, self.assets, self.keep = positions, y, assets, keep
        self.classes, self.index, self.codes = classes, index, codes
        self.folds: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.n_folds, self.every, self.reason = 0, 1, None
        self.rows = np.zeros(0, dtype="int64")


def _row_lookup(features: pd.DataFrame, rows, n: int):
    """``take(positions)``: the feature rows of those readings' positions, from ``features``
    computed for all ``n`` readings (``rows`` None) or for the ascending positions ``rows``."""
    if rows is None:
        if len(features) != n:
            raise ValueError("features and readings differ in length")
        return lambda positions: features.iloc[positions]
    rows = np.asarray(rows, dtype="int64")
    if len(features) != len(rows):
        raise ValueError("features and rows differ in length")
    if len(rows) > 1 and (np.diff(rows) <= 0).any():
        raise ValueError("rows must be ascending positions in the readings")

    def take(positions):
        loc = np.searchsorted(rows, positions)
        if len(loc) and (loc.max() >= len(rows) or (rows[loc] != positions).any()):
            raise ValueError("the features lack rows the fit reads (see training_rows)")
        return features.iloc[loc]
    return take


def _stride_rows(assets: np.ndarray, y: np.ndarray, cap: int) -> np.ndarray:
    """Positions of at most ``cap`` rows: an even per-asset stride within each class
    (``assets``: each row's asset).

    The budget is shared out between classes (a class smaller than its share keeps every row,
    the rest goes to the others), so the rare fault rows are not thinned out as much as the
    abundant healthy ones.
    """
    n = len(y)
    if n <= cap:
        return np.arange(n)
    sizes = {c: int((y == c).sum()) for c in pd.unique(y)}
    quota, budget = {}, cap
    for c in sorted(sizes, key=sizes.get):  # smallest first: water-filling
        share = budget // (len(sizes) - len(quota))
        quota[c] = min(sizes[c], share)
        budget -= quota[c]
    keep = []
    for c, q in quota.items():
        if q == 0:
            continue
        rows = np.flatnonzero(y == c)
        step = int(np.ceil(len(rows) / q))
        for a in pd.unique(assets[rows]):
            keep.append(rows[assets[rows] == a][::step])
    return np.sort(np.concatenate(keep))


def _balanced_weights(codes: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_classes).astype("float64")
    per_class = len(codes) / (n_classes * np.maximum(counts, 1.0))
    return per_class[codes]
