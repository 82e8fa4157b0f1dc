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

from collections.abc import Mapping

import numpy as np

from ._prep import CausalPrep, slow_channels
from .base import Detector

__all__ = ["MSETDetector", "StateGuard", "aggregate"]


def aggregate(R: np.ndarray, how: str) -> np.ndarray:
    """One score per row from standardized residuals: ``max`` |r| or ``rms``."""
    if R.ndim == 1:
        R = R[None, :]
    if how == "max":
        return np.max(np.abs(R), axis=1)
    if how == "rms":
        return np.sqrt(np.mean(R * R, axis=1))
    raise ValueError(f"agg must be 'max' or 'rms', got {how!r}")


def _kernel(A: np.ndarray, B: np.ndarray, bandwidth: float) -> np.ndarray:
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.exp(-np.maximum(d2, 0.0) / (2.0 * bandwidth ** 2 * A.shape[1]))


def _slow_indices(det, A: np.ndarray) -> tuple[list[int], object]:
    """The slow signals and their high-pass time constants (readings).

    ``slow_columns``: None (the default) — none; a list of names, or a mapping name → time
    constant (e.g. from the asset kind); ``"auto"`` — found in ``A`` by
    :func:`~._prep.slow_channels` (noisy on a short window, and a signal that follows a slowly
    changing load looks slow too: prefer naming them).
    """
    named = det.slow_columns
    if det.slow == "keep" or named is None:
        return [], float(det.slow_tau)
    if isinstance(named, str):
        if named != "auto":
            raise ValueError(f"slow_columns must be None, 'auto', names or a mapping, got {named!r}")
        return slow_channels(A, float(det.slow_ratio)), float(det.slow_tau)
    idx = [i for i, c in enumerate(det.columns_) if c in set(named)]
    if isinstance(named, Mapping):
        return idx, [float(named[det.columns_[i]]) for i in idx]
    return idx, float(det.slow_tau)


class StateGuard:
    """Whether a state estimate applies: steady operation inside the trained operating range.

    No opinion (score 0) where a reading's state columns lie outside the range the training rows
    covered (widened by ``state_margin`` of its span; the estimate would be an extrapolation,
    as :meth:`TwinModel.covers`), nor while the operating state is in transition: a state
    column moved by more than ``settle_frac`` of its training span within the last ``settle``
    readings (a pump that just started or stopped is still warming or cooling; a steady-state
    model calls every such transient a fault — on the simulated fleet every false alarm of the
    state estimators followed a start or a stop).
    """

    def __init__(self, det, A: np.ndarray):
        names = set(det.state_columns or ())
        self.idx = [i for i, c in enumerate(det.columns_) if c in names]
        lo = np.nanmin(A[:, self.idx], axis=0) if self.idx else np.zeros(0)
        hi = np.nanmax(A[:, self.idx], axis=0) if self.idx else np.zeros(0)
        span = hi - lo
        pad = float(det.state_margin) * span + 1e-9 * np.maximum(np.abs(lo), 1.0)
        self.lo, self.hi = lo - pad, hi + pad
        self.settle = int(getattr(det, "settle", 0) or 0)
        self.step_limit = float(getattr(det, "settle_frac", 0.2)) * span

    def covers(self, A: np.ndarray) -> np.ndarray:
        """Rows of a block (the settling window starting at its first row)."""
        if not self.idx:
            return np.ones(len(A), dtype=bool)
        S = A[:, self.idx]
        ok = np.all((S >= self.lo) & (S <= self.hi), axis=1)
        if self.settle > 0 and len(S):
            # causal rolling range of each state column over the last `settle` readings
            import pandas as pd

            roll = pd.DataFrame(S).rolling(self.settle + 1, min_periods=1)
            moved = (roll.max() - roll.min()).to_numpy() > self.step_limit
            ok &= ~moved.any(axis=1)
        return ok

    def covers_one(self, v: np.ndarray, history: list | None) -> tuple[bool, list]:
        """One reading, given the state rows of the previous readings; returns the new history."""
        if not self.idx:
            return True, []
        s = np.asarray(v, dtype=float)[self.idx]
        hist = (list(history or []) + [s.tolist()])[-(self.settle + 1):]
        ok = bool(np.all((s >= self.lo) & (s <= self.hi)))
        if self.settle > 0:
            H = np.asarray(hist, dtype=float)
            ok &= not bool(np.any(H.max(axis=0) - H.min(axis=0) > self.step_limit))
        return ok, hist


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


class MSETDetector(Detector):
    """Largest standardized residual of a similarity-based estimate (see the module docstring)."""

    default_threshold = 4.0

    def __init__(self, bandwidth: float = 0.5, reg: float = 1e-2, max_memory: int = 200,
                 folds: int = 5, agg: str = "max", input_smooth: float | None = 0.2,
                 slow: str = "highpass", slow_columns=None, slow_ratio: float = 0.5,
                 slow_tau: float = 30.0, state_columns=(), state_margin: float = 0.05,
                 settle: int = 30, settle_frac: float = 0.2, *,
                 columns=None, q: float | None = 1.0, factor: float = 1.0,
                 threshold: float | None = None, smooth: float | None = None, grace: int = 400):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold, smooth=smooth,
                         grace=grace)
        self.bandwidth = bandwidth
        self.reg = reg
        self.max_memory = max_memory
        self.folds = folds
        self.agg = agg
        self.input_smooth = input_smooth
        self.slow = slow
        self.slow_columns = slow_columns
        self.slow_ratio = slow_ratio
        self.slow_tau = slow_tau
        self.state_columns = state_columns
        self.state_margin = state_margin
        self.settle = settle
        self.settle_frac = settle_frac

    # ------------------------------------------------------------------ model
    def _memory(self, Z: np.ndarray) -> _Memory:
        step = max(1, int(np.ceil(len(Z) / max(int(self.max_memory), 2))))
        return _Memory(Z[::step], float(self.bandwidth), float(self.reg))

    def _fit(self, A):
        if int(self.folds) < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        self.slow_, taus = _slow_indices(self, A)
        self.prep_ = CausalPrep(A.shape[1], self.input_smooth, self.slow_, taus, self.slow)
        P = self.prep_.batch(A)
        self.mean_ = P.mean(axis=0)
        sd = P.std(axis=0)
        self.scale_ = np.where(sd < 1e-9, 1.0, sd)
        Z = (P - self.mean_) / self.scale_
        self.memory_ = self._memory(Z)
        n = len(Z)
        R = np.zeros_like(Z)
        blocks = [b for b in np.array_split(np.arange(n), min(int(self.folds), n)) if b.size]
        for b in blocks:
            rest = np.ones(n, dtype=bool)
            rest[b] = False
            R[b] = Z[b] - self._memory(Z[rest]).estimate(Z[b])
        sd = R.std(axis=0)
        self.resid_scale_ = np.where(sd < 1e-9, 1.0, sd)
        self.state_guard_ = StateGuard(self, A)
        kept = [self.columns_[j] for j in self.prep_.keep]
        # state signals (load, speed) place the estimate; they are never the fault themselves
        self.flagged_ = np.array([c not in set(self.state_columns or ()) for c in kept])
        oof = aggregate((R / self.resid_scale_)[:, self.flagged_], self.agg)
        # the threshold comes from rows the detector will have an opinion on (steady, in range)
        covered = self.state_guard_.covers(A)
        self._fit_scores = oof[covered] if covered.any() else oof
        self._state = None

    def residuals(self, X) -> np.ndarray:
        """Standardized residuals (rows × modelled signals) of a block, filters from its first row."""
        self._check_fitted()
        A = self._prepare(X, fitting=False)
        return self._residuals(self.prep_.batch(A))

    def _residuals(self, P: np.ndarray) -> np.ndarray:
        Z = (P - self.mean_) / self.scale_
        return (Z - self.memory_.estimate(Z)) / self.resid_scale_

    def _score(self, A):
        s = aggregate(self._residuals(self.prep_.batch(A))[:, self.flagged_], self.agg)
        return np.where(self.state_guard_.covers(A), s, 0.0)

    # ------------------------------------------------------------------ streaming
    def _learn_one(self, v):
        if not hasattr(self, "memory_"):
            self._buf = getattr(self, "_buf", [])
            self._buf.append(v)
            if len(self._buf) >= self.grace:
                A = np.asarray(self._buf)
                self._fit(A)
                self._fit_threshold(self._fit_scores)
                self._fit_scores = None
                self._buf = []
                for row in A:  # carry the filters on from the rows just learned
                    self._advance(row)
            return
        self._advance(v)

    def _advance(self, v):
        """Commit one reading to the filters and the settling window (JSON-able state)."""
        st = getattr(self, "_state", None)
        filt = self.prep_.step(v, None if st is None else st["filt"])[1]
        hist = self.state_guard_.covers_one(v, None if st is None else st["hist"])[1]
        self._state = {"filt": filt, "hist": hist}

    def _score_one(self, v):
        if not hasattr(self, "memory_"):
            return 0.0
        st = getattr(self, "_state", None)
        y, _ = self.prep_.step(v, None if st is None else st["filt"])
        if not self.state_guard_.covers_one(v, None if st is None else st["hist"])[0]:
            return 0.0
        return float(aggregate(self._residuals(y[None, :])[:, self.flagged_], self.agg)[0])
