"""MSET-style similarity-based state estimation: what healthy readings most like this one say.

The multivariate state estimation technique keeps a *memory* of healthy state vectors (every
column standardized on the training rows). For a new reading it weighs each memory vector by its
similarity to the reading (a Gaussian kernel of their distance), solves for the weights that
best reproduce the reading from the memory (``(G + reg·I)⁻¹ k``, ``G`` the memory's own
similarities) and returns the weighted memory vectors: the *estimate*. A healthy reading is
reproduced well; a fault — a combination of values that healthy operation never showed — is
not, and its residual (reading − estimate) grows on the signals the fault touches.

Scaling and threshold without tuning: the training rows are cut into ``folds`` contiguous
blocks; each block is estimated from a memory built without it, which gives residuals of
readings the model never saw (in-sample residuals are near zero and would set a threshold far
too low). Each signal's residual is divided by the standard deviation of its out-of-fold
residuals; the score is the largest of them (``agg="max"``) or their root mean square
(``"rms"``); the threshold is the ``q`` quantile of the out-of-fold training scores times
``factor`` (default: their maximum, × 1).

Inputs pass through :class:`~._prep.CausalPrep` first: an EWMA (``input_smooth``) and the slow-drift
handling (``slow``: high-pass the signals that wander slowly, e.g. temperatures — named in
``slow_columns``, with their time constants, or ``"auto"``: found from the training rows).
``state_columns`` (load, speed,
ambient) place the estimate but are never flagged, and where a reading's state lies outside the
range the training rows covered the detector has no opinion (score 0, see :class:`StateGuard`).
The warm-up, the guard and the re-learning policy (``relearn``) are shared with the learned
twin: :mod:`._state`.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(900, 1))
>>> X = np.hstack([z, 2 * z, -z]) + rng.normal(0, 0.1, (900, 3))
>>> det = MSETDetector().fit(X[:400])
>>> bad = X.copy(); bad[600:, 2] += 1.5              # break the correlation
>>> bool(det.predict(bad)[650:].mean() > 0.9 and det.predict(X)[400:].mean() < 0.05)
True
"""
from __future__ import annotations

import numpy as np

from ._state import StateEstimator, StateGuard, aggregate

__all__ = ["MSETDetector", "StateGuard", "aggregate"]


def _kernel(A: np.ndarray, B: np.ndarray, bandwidth: float) -> np.ndarray:
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.exp(-np.maximum(d2, 0.0) / (2.0 * bandwidth ** 2 * A.shape[1]))


class _Memory:
    """The memory matrix and its factorised similarity matrix."""

    def __init__(self, D: np.ndarray, bandwidth: float, reg: float):
        self.D = D
        self.bandwidth = bandwidth
        G = _kernel(D, D, bandwidth) + reg * np.eye(len(D))
        self.Ginv = np.linalg.inv(G)

    def estimate(self, Z: np.ndarray) -> np.ndarray:
        W = self.Ginv @ _kernel(self.D, Z, self.bandwidth)
        W /= np.maximum(W.sum(axis=0, keepdims=True), 1e-12)
        return W.T @ self.D


class _Model:
    """One fitted state: standardization, memory, residual spread."""

    def __init__(self, mean, scale, memory, resid_scale):
        self.mean, self.scale, self.memory, self.resid_scale = mean, scale, memory, resid_scale


class MSETDetector(StateEstimator):
    """Largest standardized residual of a similarity-based estimate (see the module docstring)."""

    def __init__(self, bandwidth: float = 0.5, reg: float = 1e-2, max_memory: int = 200,
                 folds: int = 5, **options):
        """``bandwidth``, ``reg``, ``max_memory``: the similarity estimate (see the module);
        ``folds``: out-of-fold residuals for the threshold; ``options``: the state estimators'
        settings (:class:`~._state.StateEstimator`)."""
        super().__init__(**options)
        self.bandwidth = bandwidth
        self.reg = reg
        self.max_memory = max_memory
        self.folds = folds

    def _memory(self, Z: np.ndarray) -> _Memory:
        step = max(1, int(np.ceil(len(Z) / max(int(self.max_memory), 2))))
        return _Memory(Z[::step], float(self.bandwidth), float(self.reg))

    def _fit_model(self, P):
        if int(self.folds) < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        mean = P.mean(axis=0)
        sd = P.std(axis=0)
        scale = np.where(sd < 1e-9, 1.0, sd)
        Z = (P - mean) / scale
        n = len(Z)
        R = np.zeros_like(Z)
        blocks = [b for b in np.array_split(np.arange(n), min(int(self.folds), n)) if b.size]
        for b in blocks:
            rest = np.ones(n, dtype=bool)
            rest[b] = False
            R[b] = Z[b] - self._memory(Z[rest]).estimate(Z[b])
        sd = R.std(axis=0)
        resid_scale = np.where(sd < 1e-9, 1.0, sd)
        return _Model(mean, scale, self._memory(Z), resid_scale), R / resid_scale

    def _model_residuals(self, model, P):
        Z = (P - model.mean) / model.scale
        return (Z - model.memory.estimate(Z)) / model.resid_scale

    def _flagged(self, n):
        # state signals (load, speed) place the estimate; they are never the fault themselves
        state = set(self.state_columns or ())
        return np.array([c not in state for c in self.kept_], dtype=bool)
