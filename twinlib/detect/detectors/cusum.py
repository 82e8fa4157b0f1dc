"""CUSUM: accumulates small, persistent deviations from the training mean — it finds drift.

Each column is standardized with the training mean and σ; two one-sided sums grow by
``z − k`` (upward) or ``−z − k`` (downward) and never go below zero. A slow drift of a fraction
of σ per reading, invisible to a threshold or a z-score, builds up until the sum passes the
threshold (``h``, 5 by default, in σ). Score = the largest sum over columns and directions.
The reset-at-zero recursion equals ``C[t] − min(0, min C[:t])`` for the running sum ``C``, so batch
scoring is vectorised.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = np.r_[rng.normal(0, 1, 400), rng.normal(0, 1, 200) + np.linspace(0, 3, 200)]
>>> det = CUSUM().fit(x[:400])
>>> bool(det.score(x)[-1] > det.threshold_)
True
"""
from __future__ import annotations

import numpy as np

from ._prep import StateConditioned
from .base import Detector

__all__ = ["CUSUM", "cusum"]


def cusum(z: np.ndarray, k: float) -> np.ndarray:
    """Two-sided CUSUM of standardized values: max(S⁺, S⁻) after each value."""
    z = np.asarray(z, dtype=float)
    if z.size == 0:
        return z.copy()
    c = np.subtract(z, k)
    np.cumsum(c, out=c)
    low = np.minimum.accumulate(c)
    np.minimum(low, 0.0, out=low)
    s_up = np.subtract(c, low, out=c)
    d = np.add(z, k)
    np.negative(d, out=d)
    np.cumsum(d, out=d)
    np.minimum.accumulate(d, out=low)
    np.minimum(low, 0.0, out=low)
    np.subtract(d, low, out=d)
    return np.maximum(s_up, d, out=s_up)


class CUSUM(StateConditioned, Detector):
    """Two-sided cumulative sum of standardized deviations (slack ``k`` σ per reading)."""

    default_threshold = 5.0

    def __init__(self, k: float = 0.5, state_columns=(), state_lags=None, *, columns=None, q: float | None = None,
                 factor: float = 1.0, threshold: float | None = None, horizon: float | None = None,
                 smooth: float | None = None, grace: int = 30):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold,
                         horizon=horizon, smooth=smooth,
                         grace=grace)
        self.k = k
        self.state_columns = state_columns
        self.state_lags = state_lags

    def _fit(self, A):
        A = self._cond_fit(A)
        self.mean_ = A.mean(axis=0)
        self.std_ = np.maximum(A.std(axis=0), 1e-9)
        if getattr(self, "state_", None):   # out-of-fold state residuals: honest training scores
            self._fit_scores = self._score_r(A)

    def _score(self, A):
        R, covered = self._cond_batch(A)
        # outside the trained state range: no evidence either way (the sums decay by k a reading)
        return self._score_r(np.where(covered[:, None], R, self.mean_))

    def _score_r(self, A):
        out = np.zeros(len(A))
        z = np.empty(len(A))
        for j in range(A.shape[1]):
            np.subtract(A[:, j], self.mean_[j], out=z)
            z /= self.std_[j]
            np.maximum(out, cusum(z, float(self.k)), out=out)
        return out

    def _learn_one(self, v):
        r, covered = self._cond_one(v, commit=True)
        if self.state_ and self.sres_ is None:
            # streaming without fit, with state: the first `grace` readings fit the state model
            # and the reference together; the sums start after them
            self._raw = getattr(self, "_raw", [])
            self._raw.append(v)
            if len(self._raw) >= self.grace:
                self._fit(np.asarray(self._raw))
                self._raw = []
            return
        if hasattr(self, "mean_") and not covered:
            r = self.mean_
        v = r
        if not hasattr(self, "mean_"):
            # streaming without fit: the reference is learned during the grace period
            self._n, self._s1, self._s2 = 0, np.zeros(v.size), np.zeros(v.size)
            self.mean_, self.std_ = v.copy(), np.ones(v.size)
        if getattr(self, "_n", None) is not None and self._n < self.grace:
            self._n += 1
            self._s1 += v
            self._s2 += v * v
            self.mean_ = self._s1 / self._n
            self.std_ = np.maximum(np.sqrt(np.maximum(self._s2 / self._n - self.mean_ ** 2, 0)), 1e-9)
        if not hasattr(self, "up_"):
            self.up_ = np.zeros(v.size)
            self.down_ = np.zeros(v.size)
        z = (v - self.mean_) / self.std_
        self.up_ = np.maximum(self.up_ + z - self.k, 0.0)
        self.down_ = np.maximum(self.down_ - z - self.k, 0.0)

    def _score_one(self, v):
        if not hasattr(self, "mean_"):
            return 0.0
        r, covered = self._cond_one(v, commit=False)
        if r is None:
            return 0.0
        v = r if covered else self.mean_
        z = (v - self.mean_) / self.std_
        up = getattr(self, "up_", np.zeros(z.size))        # after fit: the sums start at zero
        down = getattr(self, "down_", np.zeros(z.size))
        return float(max(np.max(np.maximum(up + z - self.k, 0.0)),
                         np.max(np.maximum(down - z - self.k, 0.0))))
