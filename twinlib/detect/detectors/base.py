"""The one contract every twinlib detector follows, batch and streaming.

Scores point one way everywhere in twinlib: **higher = more anomalous** (the opposite of
scikit-learn's outlier ``decision_function``). A detector is used either

* in batch, scikit-learn style: ``fit(X)`` on (mostly) normal data → ``score(X)`` (one float
  per row) → ``predict(X)`` (1 where ``score > threshold_``), or
* streaming, river style: ``score_one(x)`` then ``learn_one(x)`` for each reading ``x`` (a
  mapping column → value); ``score_one`` returns 0.0 until ``grace`` readings were learned.

``X`` is a DataFrame (the columns in ``columns``, or by default the fleet's sensors when present,
else every numeric column that is not an id, time, label or operating state) or a 2-D array.
One time series per call: rolling detectors see rows in order, so score each asset separately
(:func:`twinlib.detect.scoring.score_by_asset` does that).

The threshold is set in one place, :meth:`Detector._fit_threshold`: a fixed ``threshold`` if
given; else, with ``horizon`` (rows), the score the training rows would exceed about once in
``horizon`` rows, extrapolated from their tail (:func:`tail_threshold`: e.g. a week of readings,
so healthy operation alarms about once a week at most), times ``factor``; else the ``q``
quantile of the training scores (``train_scores_``; out-of-fold scores for detectors that
compute them, see :mod:`.mset`) times ``factor``; a detector used only
streaming (never fitted) uses its class's ``default_threshold`` (a value in the score's own
units, e.g. 4σ for a z-score). ``smooth`` (0 < smooth ≤ 1) passes the scores through a causal
exponential filter before thresholding — a cheap way to trade a little delay for far fewer
false alarms — and is applied identically in batch and streaming.

Subclasses implement ``_fit(A)``, ``_score(A)`` (batch raw scores), ``_learn_one(v)`` and
``_score_one(v)`` on float arrays; ``__init__`` only stores its keyword arguments.
"""
from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping

import numpy as np
import pandas as pd

from twinlib.config import SENSORS
from twinlib.twin import STATE_COLUMNS, NotFittedError, ewm_causal, ewm_step

__all__ = ["Detector", "NotFittedError", "fill_block", "pick_columns", "reading_vector",
           "tail_threshold", "training_fill"]

_META = frozenset({"id", "asset_id", "ts", "timestamp", "datetime", "time", "label", "anomaly",
                   "changepoint", "bucket", *STATE_COLUMNS})


def pick_columns(df: pd.DataFrame) -> list[str]:
    """The columns a detector scores by default: the sensors, else the numeric non-meta columns."""
    known = [s for s in SENSORS if s in df.columns]
    if known:
        return known
    cols = [c for c in df.columns if c not in _META and pd.api.types.is_numeric_dtype(df[c].dtype)]
    if not cols:
        raise ValueError("no numeric sensor columns to score")
    return cols



def _finite(raw: float) -> float:
    """A raw score as the batch smoother sees it (NaN → 0, ±inf → ±1e12), so a streaming
    smoothed score equals the batch one."""
    return float(np.nan_to_num(raw, nan=0.0, posinf=1e12, neginf=-1e12))

def tail_threshold(scores: np.ndarray, horizon: float, tail: float = 0.1) -> float:
    """The score healthy rows like ``scores`` exceed about once in ``horizon`` rows.

    Peaks over a threshold: above ``u``, the ``1 − tail`` quantile of the scores, the excesses
    are taken as exponential (mean excess ``β``), so ``P(score > u + x) = tail · e^(−x/β)`` and
    the level exceeded once in ``horizon`` rows is ``u + β · ln(tail · horizon)``. Why not the
    largest training score: it is exceeded about once per training length, so a week of
    readings after a day of training crosses it ~7 times by chance; and one extreme training
    row sets it alone. An exponential tail is heavier than that of the (near-Gaussian) scores
    detectors give healthy rows, so the extrapolation errs towards fewer false alarms; and the
    mean excess of the top tenth is not moved much by one extreme training row.

    >>> s = np.random.default_rng(0).exponential(1.0, 100_000)
    >>> round(tail_threshold(s, 1e6), 1)     # true value ln(1e6) = 13.8
    13.8
    """
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise ValueError("tail_threshold needs at least one finite score")
    if horizon <= 1:
        raise ValueError(f"horizon must be more than 1 row, got {horizon!r}")
    u = float(np.quantile(s, 1.0 - tail))
    exc = s[s > u] - u
    if exc.size < 2 or tail * horizon <= 1.0:
        return float(np.quantile(s, max(0.0, 1.0 - 1.0 / horizon)))
    return u + float(exc.mean()) * float(np.log(tail * horizon))


def training_fill(A: np.ndarray) -> np.ndarray:
    """Per column, what stands in for a missing value with no earlier one: the training mean
    (0 for a column without any value)."""
    fill = np.nanmean(A, axis=0) if len(A) else np.zeros(A.shape[1])
    return np.where(np.isnan(fill), 0.0, fill)


def fill_block(A: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """A block's missing values: the last known one of the column (no new evidence), else
    ``fill`` — the batch twin of :func:`reading_vector`."""
    if not np.isnan(A).any():
        return A
    A = pd.DataFrame(A).ffill().to_numpy()
    return np.where(np.isnan(A), fill, A)


def reading_vector(x, names, last: np.ndarray | None, fill: np.ndarray | None) -> np.ndarray:
    """The values of ``names`` in one reading (a mapping) as floats. A missing or NaN value takes
    the previous reading's (``last``), else ``fill`` (e.g. the training medians), else 0."""
    v = np.array([np.nan if x.get(c) is None else float(x.get(c)) for c in names])
    if np.isnan(v).any():
        fallback = last if last is not None else (fill if fill is not None else np.zeros(v.size))
        v = np.where(np.isnan(v), fallback, v)
        v = np.where(np.isnan(v), 0.0, v)
    return v


class Detector:
    """Base class: batch ``fit/score/predict`` and streaming ``learn_one/score_one``."""

    #: Threshold in score units for a detector that was never fitted (streaming only).
    default_threshold: float = 1.0
    #: True when ``fit`` wants the whole contiguous training span (with ``label`` marking rows to
    #: leave out) rather than only the normal rows — detectors with internal filters.
    fit_on_span: bool = False

    def __init__(self, *, columns=None, q: float = 0.99, factor: float = 1.0,
                 threshold: float | None = None,
                 horizon: float | None = None, smooth: float | None = None, grace: int = 30):
        self.columns = columns
        self.q = q
        self.factor = factor
        self.threshold = threshold
        self.horizon = horizon
        self.smooth = smooth
        self.grace = grace

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict:
        """The constructor's keyword arguments (for cloning and model cards)."""
        names = []
        for klass in type(self).__mro__:
            if klass is object:
                continue
            sig = inspect.signature(klass.__init__)
            names += [p for p in sig.parameters if p != "self" and p not in names
                      and sig.parameters[p].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                         inspect.Parameter.VAR_POSITIONAL)]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def clone(self) -> "Detector":
        """A fresh, unfitted detector with the same parameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ input handling
    def _prepare(self, X, fitting: bool):
        """Turn ``X`` into the float matrix the subclass works on (and remember the columns)."""
        if isinstance(X, pd.DataFrame):
            if fitting:
                self.columns_ = list(self.columns) if self.columns is not None else pick_columns(X)
            missing = [c for c in self.columns_ if c not in X.columns]
            if missing:
                raise ValueError(f"columns missing from the data: {missing}")
            A = X[self.columns_].to_numpy(dtype=float)
        else:
            A = np.asarray(X, dtype=float)
            if A.ndim == 1:
                A = A[:, None]
            if A.ndim != 2:
                raise ValueError(f"expected a 2-D array, got shape {A.shape}")
            if fitting:
                self.columns_ = list(self.columns) if self.columns is not None else \
                    [f"x{i}" for i in range(A.shape[1])]
        if A.shape[1] != len(self.columns_):
            raise ValueError(f"expected {len(self.columns_)} columns, got {A.shape[1]}")
        if fitting:
            self.fill_ = training_fill(A)
        return fill_block(A, self.fill_)

    def _vector(self, x: Mapping) -> np.ndarray:
        if not hasattr(self, "columns_"):
            if self.columns is not None:
                self.columns_ = list(self.columns)
            else:
                self.columns_ = pick_columns(pd.DataFrame([{k: v for k, v in x.items()
                                                            if isinstance(v, (int, float, np.number))
                                                            or v is None}]).astype(float))
        v = reading_vector(x, self.columns_, getattr(self, "_last_", None),
                           getattr(self, "fill_", None))
        self._last_ = v
        return v

    # ------------------------------------------------------------------ batch
    def fit(self, X, y=None) -> "Detector":
        """Learn from (mostly) normal data; sets ``threshold_`` from the training scores."""
        A = self._prepare(X, fitting=True)
        if len(A) < 2:
            raise ValueError(f"{type(self).__name__}.fit needs at least 2 rows, got {len(A)}")
        self._fit_rows = None
        self._fit_scores = None
        self._fit(A)
        self.n_seen_ = len(A)
        if self._fit_scores is not None:
            # the subclass scored each training row with a model that never saw it (out of fold):
            # an honest picture of healthy scores, where in-sample ones are too small
            scores = self._smooth_batch(self._fit_scores)
        else:
            scores = self._smooth_batch(self._score(A))
            if self._fit_rows is not None:  # the subclass learned from only some rows
                scores = scores[self._fit_rows]
        self.train_scores_ = np.asarray(scores, dtype=float)
        self._fit_threshold(scores)
        del self._fit_rows, self._fit_scores
        return self

    def score(self, X) -> np.ndarray:
        """Anomaly score of each row (higher = more anomalous)."""
        self._check_fitted()
        A = self._prepare(X, fitting=False)
        if len(A) == 0:
            return np.zeros(0)
        return self._smooth_batch(self._score(A))

    def predict(self, X) -> np.ndarray:
        """1 where the score exceeds ``threshold_``, else 0."""
        return (self.score(X) > self.threshold_).astype(np.int8)

    def _fit_threshold(self, scores: np.ndarray) -> None:
        """The one place a threshold is decided (see the module docstring)."""
        scores = np.asarray(scores, dtype=float)
        scores = scores[np.isfinite(scores)]
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        elif self.horizon is not None and scores.size:
            self.threshold_ = float(tail_threshold(scores, float(self.horizon)) * self.factor)
        elif self.q is not None and scores.size:
            self.threshold_ = float(np.quantile(scores, self.q) * self.factor)
        else:
            self.threshold_ = float(self.default_threshold)

    def _smooth_batch(self, s: np.ndarray) -> np.ndarray:
        s = np.nan_to_num(np.asarray(s, dtype=float), nan=0.0, posinf=1e12)
        if self.smooth is None or s.size == 0:
            return s
        return ewm_causal(s, float(self.smooth))

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(X) first")

    # ------------------------------------------------------------------ streaming
    def learn_one(self, x: Mapping) -> "Detector":
        """Update the detector with one reading (call after :meth:`score_one`)."""
        v = self._vector(x)
        if self.smooth is not None:
            raw = self._score_one(v) if self._warm() else 0.0
            prev = getattr(self, "_smoothed_", None)
            self._smoothed_ = ewm_step(prev, _finite(raw), self.smooth)
        self._learn_one(v)
        self.n_seen_ = getattr(self, "n_seen_", 0) + 1
        if not hasattr(self, "threshold_") and self.threshold is not None:
            self.threshold_ = float(self.threshold)
        return self

    def score_one(self, x: Mapping) -> float:
        """Anomaly score of one reading, without learning from it; 0.0 during warm-up."""
        if not self._warm():
            return 0.0
        v = self._vector(x)
        raw = float(self._score_one(v))
        if self.smooth is not None:
            prev = getattr(self, "_smoothed_", None)
            raw = ewm_step(prev, _finite(raw), self.smooth)
        return raw if np.isfinite(raw) else 1e12

    def predict_one(self, x: Mapping) -> bool:
        """True when :meth:`score_one` exceeds the threshold."""
        thr = getattr(self, "threshold_", None)
        if thr is None:
            thr = self.threshold if self.threshold is not None else self.default_threshold
        return self.score_one(x) > thr

    def _warm(self) -> bool:
        return getattr(self, "n_seen_", 0) >= self.grace

    # ------------------------------------------------------------------ to implement
    def _fit(self, A: np.ndarray) -> None:
        raise NotImplementedError

    def _score(self, A: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _learn_one(self, v: np.ndarray) -> None:
        raise NotImplementedError

    def _score_one(self, v: np.ndarray) -> float:
        raise NotImplementedError
