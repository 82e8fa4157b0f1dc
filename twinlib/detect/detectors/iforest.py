"""Isolation forest (scikit-learn), with twinlib's score direction and streaming wrapper.

Score = ``-score_samples`` so that higher means more anomalous. Streaming use keeps the last
``window`` readings and refits the forest every ``refit_every`` readings after the grace period.
Seeded through ``seed``.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(500, 3))
>>> det = IsolationForestDetector(seed=0).fit(X)
>>> bool(det.score(np.array([[6.0, 6.0, 6.0]]))[0] > det.threshold_)
True
"""
from __future__ import annotations

from collections import deque

import numpy as np
from sklearn.ensemble import IsolationForest

from ._prep import StateConditioned
from .base import Detector

__all__ = ["IsolationForestDetector"]


class IsolationForestDetector(StateConditioned, Detector):
    """``-IsolationForest.score_samples`` (≈0.5 normal, towards 1 isolated)."""

    default_threshold = 0.6

    def __init__(self, n_estimators: int = 100, max_samples: int | str = 256, seed: int = 0,
                 window: int = 2000, refit_every: int = 1000, state_columns=(), state_lags=None, *,
                 columns=None,
                 q: float | None = 0.99, factor: float = 1.0, threshold: float | None = None,
                 horizon: float | None = None,
                 smooth: float | None = None, grace: int = 200):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold,
                         horizon=horizon, smooth=smooth,
                         grace=grace)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed
        self.window = window
        self.refit_every = refit_every
        self.state_columns = state_columns
        self.state_lags = state_lags

    def _fit(self, A):
        A = self._cond_fit(A)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators,
                                       max_samples=min(self.max_samples, len(A))
                                       if isinstance(self.max_samples, int) else self.max_samples,
                                       random_state=self.seed, n_jobs=1).fit(A)
        if getattr(self, "state_", None):   # out-of-fold state residuals: honest training scores
            self._fit_scores = -self.forest_.score_samples(A)

    def _score(self, A):
        R, covered = self._cond_batch(A)
        return np.where(covered, -self.forest_.score_samples(R), 0.0)

    def _learn_one(self, v):
        self._cond_one(v, commit=True)           # carry the state filters
        if not hasattr(self, "_buf"):
            self._buf = deque(maxlen=int(self.window))
        self._buf.append(v)
        n = getattr(self, "n_seen_", 0) + 1
        if n == self.grace or (n > self.grace and n % self.refit_every == 0):
            self._fit(np.asarray(self._buf))

    def _score_one(self, v):
        if not hasattr(self, "forest_"):
            return 0.0
        r, covered = self._cond_one(v, commit=False)
        if r is None or not covered:
            return 0.0
        return float(-self.forest_.score_samples(r[None, :])[0])
