"""Learned-twin detector: each signal predicted from the others (and the operating state).

A :class:`twinlib.twin.LearnedTwin` — one ridge regression per measured signal over the state
signals and the other measured signals — is fitted on the training rows after the same causal
conditioning as :mod:`.mset` (EWMA ``input_smooth``, slow-drift high-pass). Residuals are in
units of the *out-of-fold* residual spread; the score is the largest one (``agg="max"``) or their
root mean square; the threshold is the ``q`` quantile of the out-of-fold training scores times
``factor`` (default: their maximum). Works on any column names: pass ``state_columns`` for the
signals that set the operating point (load, speed) — they explain, they are never flagged, and
outside the range the training rows covered, or while the state is in transition (a start or a
stop within the last ``settle`` readings), the detector has no opinion (score 0; see
:class:`~.mset.StateGuard`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(900, 1))
>>> X = np.hstack([z, 2 * z, -z]) + rng.normal(0, 0.1, (900, 3))
>>> det = LearnedTwinDetector().fit(X[:400])
>>> bad = X.copy(); bad[600:, 2] += 1.5
>>> bool(det.predict(bad)[650:].mean() > 0.9 and det.predict(X)[400:].mean() < 0.05)
True
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from twinlib.twin import LearnedTwin

from ._prep import CausalPrep
from .base import Detector
from .mset import MSETDetector, StateGuard, _slow_indices, aggregate

__all__ = ["LearnedTwinDetector"]


class LearnedTwinDetector(Detector):
    """Largest standardized residual of a :class:`~twinlib.twin.LearnedTwin`."""

    default_threshold = 4.0

    def __init__(self, state_columns=(), alpha: float = 1.0, folds: int = 5, agg: str = "max",
                 input_smooth: float | None = 0.2, slow: str = "highpass", slow_columns=None,
                 slow_ratio: float = 0.5, slow_tau: float = 30.0, state_margin: float = 0.05,
                 settle: int = 30, settle_frac: float = 0.2, *, columns=None,
                 q: float | None = 1.0, factor: float = 1.0, threshold: float | None = None,
                 smooth: float | None = None, grace: int = 400):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold, smooth=smooth,
                         grace=grace)
        self.state_columns = state_columns
        self.alpha = alpha
        self.folds = folds
        self.agg = agg
        self.input_smooth = input_smooth
        self.slow = slow
        self.slow_columns = slow_columns
        self.slow_ratio = slow_ratio
        self.slow_tau = slow_tau
        self.state_margin = state_margin
        self.settle = settle
        self.settle_frac = settle_frac

    def _frame(self, P: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(P, columns=self.kept_)

    def _fit(self, A):
        self.slow_, taus = _slow_indices(self, A)
        self.prep_ = CausalPrep(A.shape[1], self.input_smooth, self.slow_, taus, self.slow)
        self.kept_ = [self.columns_[j] for j in self.prep_.keep]
        state = [c for c in (self.state_columns or ()) if c in self.kept_]
        self.twin_ = LearnedTwin(measured=[c for c in self.kept_ if c not in state], state=state,
                                 alpha=float(self.alpha), folds=int(self.folds))
        self.twin_.fit(self._frame(self.prep_.batch(A)))
        std = np.array([self.twin_.resid_std_[m] for m in self.twin_.measured_])
        oof = aggregate(self.twin_.oof_residuals_ / std, self.agg)
        self.state_guard_ = StateGuard(self, A)
        covered = self.state_guard_.covers(A)   # threshold from steady, in-range rows only
        self._fit_scores = oof[covered] if covered.any() else oof
        self._state = None
        # the twin's models as arrays over the kept columns (one reading costs microseconds)
        pos = {c: i for i, c in enumerate(self.kept_)}
        self.arrays_ = [([pos[c] for c in p["inputs"]], pos[m], np.asarray(p["mean"]),
                         np.asarray(p["scale"]), np.asarray(p["coef"]), p["intercept"],
                         p["resid_std"]) for m, p in self.twin_.models_.items()]

    def _residuals(self, P: np.ndarray) -> np.ndarray:
        return np.column_stack([(P[:, j] - (((P[:, idx] - mu) / sd) @ w + b0)) / rs
                                for idx, j, mu, sd, w, b0, rs in self.arrays_])

    def _score(self, A):
        s = aggregate(self._residuals(self.prep_.batch(A)), self.agg)
        return np.where(self.state_guard_.covers(A), s, 0.0)

    def _learn_one(self, v):
        if not hasattr(self, "twin_"):
            self._buf = getattr(self, "_buf", [])
            self._buf.append(v)
            if len(self._buf) >= self.grace:
                A = np.asarray(self._buf)
                self._fit(A)
                self._fit_threshold(self._fit_scores)
                self._fit_scores = None
                self._buf = []
                for row in A:
                    MSETDetector._advance(self, row)
            return
        MSETDetector._advance(self, v)

    def _score_one(self, v):
        if not hasattr(self, "twin_"):
            return 0.0
        st = getattr(self, "_state", None)
        y, _ = self.prep_.step(v, None if st is None else st["filt"])
        if not self.state_guard_.covers_one(v, None if st is None else st["hist"])[0]:
            return 0.0
        return float(aggregate(self._residuals(y[None, :]), self.agg)[0])
