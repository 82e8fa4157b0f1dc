"""Causal input conditioning shared by the detectors.

The state-estimation detectors (MSET, learned twin) use :class:`CausalPrep`; the detectors with
no model of operating state of their own (PCA, isolation forest, CUSUM) use
:class:`StateConditioned` (see there).

Two linear filters, both causal and both run the same way in batch and one reading at a time:

* ``smooth`` — an exponential moving average of every input (noise averages out, a persistent
  change stays);
* slow-drift handling — a signal named as slow (or, with ``"auto"``, one that moves slowly
  compared with its own noise: the standard deviation of its first differences is below
  ``slow_ratio`` times its standard deviation in the training rows; white noise gives √2, a
  thermal drift ≈ 0.3) is *high-passed*: its deviation from its own exponential mean over ``slow_tau`` readings is kept,
  its level is dropped. Why: after the training rows such a signal keeps drifting (the water
  warms up over an experiment) and a model of levels would call every later reading abnormal,
  holding the alarm long after the fault ended; its fast changes still carry the fault.
  ``slow="keep"`` models it like any other signal, ``slow="drop"`` leaves it out.

The state of both filters is a small dict of floats (JSON-able), so a live monitor can carry it.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from twinlib.twin import ewm_causal, ewm_step

from .base import fill_block, reading_vector, training_fill

__all__ = ["slow_channels", "CausalPrep", "StateResiduals", "StateConditioned", "STATE_LAGS_S"]


def slow_channels(A: np.ndarray, ratio: float = 0.5) -> list[int]:
    """Indices of the columns whose first differences are small beside their spread."""
    out = []
    for j in range(A.shape[1]):
        x = A[:, j]
        x = x[np.isfinite(x)]
        if x.size < 3:
            continue
        sd = float(np.std(x))
        if sd > 1e-12 and float(np.std(np.diff(x))) < ratio * sd:
            out.append(j)
    return out


class CausalPrep:
    """EWMA smoothing of every column, then a high-pass on the slow columns (see module)."""

    def __init__(self, n_cols: int, smooth: float | None, slow: list[int], slow_tau,
                 slow_policy: str = "highpass"):
        if slow_policy not in ("highpass", "drop", "keep"):
            raise ValueError(f"slow must be 'highpass', 'drop' or 'keep', got {slow_policy!r}")
        self.n_cols = n_cols
        self.smooth = smooth
        self.slow = list(slow) if slow_policy != "keep" else []
        self.policy = slow_policy
        # one time constant for every slow column, or a list (one per column of `slow`)
        taus = list(slow_tau) if isinstance(slow_tau, (list, tuple)) else [slow_tau] * len(self.slow)
        if len(taus) != len(self.slow):
            raise ValueError(f"slow_tau: {len(taus)} time constants for {len(self.slow)} slow columns")
        self.hp_alpha = np.ones(n_cols)
        for j, tau in zip(self.slow, taus):
            self.hp_alpha[j] = 1.0 - math.exp(-1.0 / float(tau))
        self.keep = [j for j in range(n_cols) if not (slow_policy == "drop" and j in self.slow)]

    def batch(self, A: np.ndarray) -> np.ndarray:
        """Filter a block of rows, the filters starting at its first row."""
        Y = np.array(A, dtype=float, copy=True)
        if self.smooth is not None:
            for j in range(Y.shape[1]):
                Y[:, j] = ewm_causal(Y[:, j], float(self.smooth))
        if self.policy == "highpass":
            for j in self.slow:
                Y[:, j] = Y[:, j] - ewm_causal(Y[:, j], float(self.hp_alpha[j]))
        return Y[:, self.keep]

    def step(self, v: np.ndarray, state: dict | None) -> tuple[np.ndarray, dict]:
        """Filter one row given the state after the previous one (None: this is the first row)."""
        v = np.asarray(v, dtype=float)
        if state is None:
            sm = v.copy()
            base = sm.copy()
        else:
            prev_sm = np.asarray(state["sm"], dtype=float)
            sm = v.copy() if self.smooth is None else ewm_step(prev_sm, v, float(self.smooth))
            base = ewm_step(np.asarray(state["base"], dtype=float), sm, self.hp_alpha)
        y = sm.copy()
        if self.policy == "highpass":
            for j in self.slow:
                y[j] = sm[j] - base[j]
        return y[self.keep], {"sm": sm.tolist(), "base": base.tolist()}


# ---------------------------------------------------------------------------------------------
# What the operating state does not explain (the detectors that model no state of their own)

def _twin_lags_s() -> tuple[float, ...]:
    """The twin's bank of lag time constants (seconds): one basis for every state model."""
    import inspect

    from twinlib.twin import TwinModel

    return tuple(float(t) for t in inspect.signature(TwinModel.__init__).parameters["taus_s"].default)


#: Lag time constants (seconds) of the state features — :class:`twinlib.twin.TwinModel`'s bank.
STATE_LAGS_S = _twin_lags_s()



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


class StateResiduals:
    """Each measured signal minus what the operating state explains, causal and linear.

    Features of the state signals ``s`` (load, speed, ambient…): ``s``, ``s²`` and ``s`` through
    causal exponential filters of each time constant in ``lags`` (readings). Why a bank of lags:
    a machine answers a load step with its own delay (a motor warms over tens of minutes, a
    pressure follows at once); a bank spanning seconds to an hour lets least squares find each
    signal's response without choosing a time constant. Least squares with an intercept on the
    standardized features of the training rows (minimum-norm where features are collinear).
    The filter state is a small dict of floats; batch filters start at the block's first row,
    streaming ones at the first reading learned, so both give the same residuals.
    """

    def __init__(self, n_state: int, lags):
        self.n_state = int(n_state)
        # a lag under one reading is the raw value again
        self.alphas = [1.0 - math.exp(-1.0 / float(t)) for t in lags if float(t) >= 1.0]

    def features(self, S: np.ndarray) -> np.ndarray:
        """The feature rows of a block of state rows (filters starting at its first row)."""
        cols = [S, S * S]
        for a in self.alphas:
            cols.append(np.column_stack([ewm_causal(S[:, j], a) for j in range(S.shape[1])]))
        return np.hstack(cols)

    def features_one(self, s: np.ndarray, mem: dict | None) -> tuple[np.ndarray, dict]:
        """One row's features and the filter state after it (``mem`` None: the first row)."""
        mem = mem or {}
        new = [ewm_step(None if repr(a) not in mem else np.asarray(mem[repr(a)], dtype=float), s, a)
               for a in self.alphas]
        return (np.concatenate([s, s * s, *new]),
                {repr(a): np.asarray(m).tolist() for a, m in zip(self.alphas, new)})

    def fit(self, Y: np.ndarray, F: np.ndarray) -> "StateResiduals":
        self.f_mean_ = F.mean(axis=0)
        sd = F.std(axis=0)
        self.f_scale_ = np.where(sd < 1e-12, 1.0, sd)
        self.y_mean_ = Y.mean(axis=0)
        Z = (F - self.f_mean_) / self.f_scale_
        self.coef_ = np.linalg.lstsq(Z, Y - self.y_mean_, rcond=1e-8)[0]
        return self

    def residuals(self, Y: np.ndarray, F: np.ndarray) -> np.ndarray:
        Z = (F - self.f_mean_) / self.f_scale_
        return Y - self.y_mean_ - Z @ self.coef_


class StateConditioned:
    """Mixin (before :class:`~.base.Detector`): score what the operating state does not explain.

    With ``state_columns`` (the kind's state signals) present in the fitting frame, the detector
    works on :class:`StateResiduals` of its measured columns instead of the raw values: a healthy
    pump that changes load, speed or ambient moves its raw signals but not these residuals, so a
    detector with no model of operating state stops alarming on every change of duty. Without
    state columns (none named, or none in the data — e.g. SKAB) nothing changes.

    Where a reading's state lies outside the range the training rows covered, the detector has
    no opinion (as the state estimators: :class:`StateGuard`): a regression
    extrapolated to a stop it never saw is not evidence of a fault.

    Subclasses call :meth:`_cond_fit` in ``_fit``, :meth:`_cond_batch` in ``_score``, and
    :meth:`_cond_one` in ``_score_one`` (``commit=False``) and ``_learn_one`` (``commit=True``).
    """

    def _state_names(self, have) -> list[str]:
        return [c for c in (self.state_columns or ()) if c in have]

    def _prepare(self, X, fitting):
        A = super()._prepare(X, fitting)
        if fitting:
            self.state_ = self._state_names(X.columns) if isinstance(X, pd.DataFrame) else []
            self.meas_idx_ = [i for i, c in enumerate(self.columns_) if c not in set(self.state_)]
            self.sres_ = None
            self._sres_mem = None
        if not getattr(self, "state_", None):
            return A
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"{type(self).__name__} models the state {self.state_}: "
                             "give a DataFrame with those columns")
        missing = [c for c in self.state_ if c not in X.columns]
        if missing:
            raise ValueError(f"state columns missing from the data: {missing}")
        S = X[self.state_].to_numpy(dtype=float)
        if fitting:
            self.state_fill_ = training_fill(S)
        return np.hstack([A[:, self.meas_idx_], fill_block(S, self.state_fill_)])

    def _vector(self, x):
        v = super()._vector(x)
        if not hasattr(self, "state_"):          # streaming without fit
            self.state_ = self._state_names(x.keys())
            self.meas_idx_ = [i for i, c in enumerate(self.columns_) if c not in set(self.state_)]
            self.sres_ = None
            self._sres_mem = None
        if not self.state_:
            return v
        s = reading_vector(x, self.state_, getattr(self, "_last_state_", None),
                           getattr(self, "state_fill_", None))
        self._last_state_ = s
        return np.concatenate([v[self.meas_idx_], s])

    def _lags(self):
        return self.state_lags if self.state_lags is not None else STATE_LAGS_S

    def _cond_fit(self, W: np.ndarray) -> np.ndarray:
        """Fit the state model on training rows ``W``; their residuals (``W`` without state).

        The residuals returned are *out of fold* (5 contiguous blocks, each predicted by a model
        fitted without it), as the state estimators do: in-sample residuals of a regression are
        too small, and a detector standardized and thresholded on them alarms on every reading
        the fit did not see. Rows outside the state range of the other blocks are left out (the
        live detector has no opinion there). The model kept is fitted on every row.
        """
        if not getattr(self, "state_", None):
            return W
        m = len(self.meas_idx_)
        n = len(W)
        # a lag is learned only where the training rows span ten of its time constants
        lags = [t for t in self._lags() if float(t) <= n / 10.0]
        model = StateResiduals(len(self.state_), lags)
        F = model.features(W[:, m:])
        Y = W[:, :m]
        R = np.empty_like(Y)
        blocks = [b for b in np.array_split(np.arange(n), min(5, n)) if b.size]
        if len(blocks) < 2 or n < 10 * F.shape[1]:
            R = None
        else:
            keep = np.ones(n, dtype=bool)
            for b in blocks:
                rest = np.ones(n, dtype=bool)
                rest[b] = False
                part = StateResiduals(len(self.state_), lags).fit(Y[rest], F[rest])
                R[b] = part.residuals(Y[b], F[b])
                # where the other blocks never went, the live detector has no opinion either
                keep[b] = self._guard(F[rest]).covers(F[b])
            R = R[keep] if keep.sum() >= max(10, n // 4) else R
        self.sres_ = model.fit(Y, F)   # the live filter state carries on (see _prepare)
        self.state_guard_ = self._guard(F)
        return model.residuals(Y, F) if R is None else R

    def _guard(self, F: np.ndarray):
        """The state estimators' range guard (:class:`StateGuard`, no settling wait)
        on the state *features*: a restart after a stop longer than any in the training rows
        leaves the lags where they never were, and the regression would extrapolate."""
        from types import SimpleNamespace

        names = [f"f{i}" for i in range(F.shape[1])]
        view = SimpleNamespace(state_columns=names, state_margin=0.05, settle=0, columns_=names)
        return StateGuard(view, F)

    def _cond_batch(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals of a block and whether the state model covers each row (see the class)."""
        if not getattr(self, "state_", None):
            return W, np.ones(len(W), dtype=bool)
        m = len(self.meas_idx_)
        F = self.sres_.features(W[:, m:])
        return self.sres_.residuals(W[:, :m], F), self.state_guard_.covers(F)

    def _cond_one(self, w: np.ndarray, commit: bool) -> tuple[np.ndarray | None, bool]:
        """One reading's residuals (None while the state model is not fitted yet), covered."""
        if not getattr(self, "state_", None):
            return w, True
        m = len(self.meas_idx_)
        model = self.sres_
        if model is None:     # streaming before the state model is fitted: carry every filter
            model = StateResiduals(len(self.state_), self._lags())
        f, mem = model.features_one(w[m:], self._sres_mem)
        if commit:
            self._sres_mem = mem
        if self.sres_ is None:
            return None, True
        return (self.sres_.residuals(w[None, :m], f[None, :])[0],
                bool(self.state_guard_.covers(f[None, :])[0]))
