"""Causal input conditioning shared by the state-estimation detectors (MSET, learned twin).

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

from twinlib.twin import ewm_causal, ewm_step

__all__ = ["slow_channels", "CausalPrep"]


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
