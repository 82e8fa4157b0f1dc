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


class CUSUM(Detector):
    """Two-sided cumulative sum of standardized deviations (slack ``k`` σ per reading)."""

    default_threshold = 5.0

    def __init__(self, k: float = 0.5, *, columns=None, q: float | None = None,
                 factor: float = 1.0, threshold: float | None = None, horizon: float | None = None,
                 smooth: float | None = None, grace: int = 30):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold,
                         horizon=horizon, smooth=smooth,
                         grace=grace)
        self.k = k

    def _fit(self, A):
        self.mean_ = A.mean(axis=0)
        self.std_ = np.maximum(A.std(axis=0), 1e-9)

    def _score(self, A):
        out = np.zeros(len(A))
        z = np.empty(len(A))
        for j in range(A.shape[1]):
            np.subtract(A[:, j], self.mean_[j], out=z)
            z /= self.std_[j]
            np.maximum(out, cusum(z, float(self.k)), out=out)
        return out

    def _learn_one(self, v):
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
        if not hasattr(self, "up_"):
            return 0.0
        z = (v - self.mean_) / self.std_
        return float(max(np.max(np.maximum(self.up_ + z - self.k, 0.0)),
                         np.max(np.maximum(self.down_ - z - self.k, 0.0))))
