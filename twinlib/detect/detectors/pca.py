"""PCA T² + Q: the multivariate detector of process monitoring (Hotelling T² and SPE).

The training data is standardized and split by PCA into a *model* subspace (the first
components, explaining ``n_components`` of the variance when it is a fraction) and a *residual*
subspace. T² measures how far a reading sits inside the model subspace (an unusual but
correlated operating point); Q (squared prediction error) how far it sits outside it (the usual
correlation between sensors is broken — a leak lowers pressure without lowering load). Each is
divided by its ``limit_q`` quantile on the training data; the score is the larger of the two, so
1.0 is "at the training limit".

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> base = rng.normal(size=(600, 1))
>>> X = np.hstack([base, base * 2, -base]) + rng.normal(0, 0.1, (600, 3))
>>> det = PCAT2Q(n_components=1).fit(X[:400])
>>> bad = X[400:].copy(); bad[:, 2] += 1.0         # break the correlation
>>> bool(det.score(bad).mean() > det.score(X[400:]).mean() * 3)
True
"""
from __future__ import annotations

import numpy as np

from ._prep import StateConditioned
from .base import Detector

__all__ = ["PCAT2Q"]


class PCAT2Q(StateConditioned, Detector):
    """max(T²/T²_limit, Q/Q_limit) of a PCA model of standardized data."""

    default_threshold = 1.0

    def __init__(self, n_components: float | int = 0.9, limit_q: float = 0.99,
                 refit_every: int = 500, state_columns=(), state_lags=None, *, columns=None, q: float | None = None,
                 factor: float = 1.0, threshold: float | None = None, horizon: float | None = None,
                 smooth: float | None = None, grace: int = 60):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold,
                         horizon=horizon, smooth=smooth,
                         grace=grace)
        self.n_components = n_components
        self.limit_q = limit_q
        self.refit_every = refit_every
        self.state_columns = state_columns
        self.state_lags = state_lags

    def _fit(self, A):
        A = self._cond_fit(A)
        self.mean_ = A.mean(axis=0)
        self.scale_ = A.std(axis=0)
        self.scale_ = np.where(self.scale_ < 1e-9, 1.0, self.scale_)
        Z = (A - self.mean_) / self.scale_
        _, s, vt = np.linalg.svd(Z, full_matrices=False)
        var = s ** 2 / max(len(Z) - 1, 1)
        nc = self.n_components
        if isinstance(nc, float) and 0 < nc < 1:
            frac = np.cumsum(var) / max(var.sum(), 1e-18)
            k = int(np.searchsorted(frac, nc) + 1)
        else:
            k = int(nc)
        k = max(1, min(k, Z.shape[1] - 1 if Z.shape[1] > 1 else 1))
        self.components_ = vt[:k]
        self.explained_variance_ = np.maximum(var[:k], 1e-12)
        t2, qs = self._stats(Z)
        self.t2_limit_ = max(float(np.quantile(t2, self.limit_q)), 1e-9)
        self.q_limit_ = max(float(np.quantile(qs, self.limit_q)), 1e-9)
        if getattr(self, "state_", None):   # out-of-fold state residuals: honest training scores
            self._fit_scores = self._score_r(A)

    def _stats(self, Z):
        T = Z @ self.components_.T
        t2 = np.sum(T * T / self.explained_variance_, axis=1)
        R = Z - T @ self.components_
        return t2, np.sum(R * R, axis=1)

    def _score(self, A):
        R, covered = self._cond_batch(A)
        return np.where(covered, self._score_r(R), 0.0)

    def _score_r(self, A):
        t2, qs = self._stats((A - self.mean_) / self.scale_)
        return np.maximum(t2 / self.t2_limit_, qs / self.q_limit_)

    def _learn_one(self, v):
        # streaming: keep a bounded buffer and refit the PCA model on it every refit_every
        self._cond_one(v, commit=True)           # carry the state filters
        buf = getattr(self, "_buf", None)
        if buf is None:
            self._buf = buf = []
        buf.append(v)
        if len(buf) > max(self.refit_every * 4, self.grace):
            del buf[: len(buf) - self.refit_every * 4]
        n = getattr(self, "n_seen_", 0) + 1
        if n == self.grace or (n > self.grace and n % self.refit_every == 0):
            self._fit(np.asarray(buf))

    def _score_one(self, v):
        if not hasattr(self, "components_"):
            return 0.0
        r, covered = self._cond_one(v, commit=False)
        if r is None or not covered:
            return 0.0
        return float(self._score_r(r[None, :])[0])
