"""What the state-estimation detectors (:mod:`.mset`, :mod:`.learned_twin`) share.

* :func:`aggregate` — one score per row from standardized residuals;
* :class:`StateGuard` — no opinion outside the trained operating range or while the state settles;
* :class:`StateEstimator` — the base class: causal input conditioning (:class:`~._prep.CausalPrep`),
  an out-of-fold threshold, the streaming warm-up (buffer ``grace`` readings, fit on them, carry
  the filters on from them) and the **re-learning policy** below. A subclass supplies only
  ``_fit_model(P) → (model, out-of-fold residuals)`` and ``_model_residuals(model, P)``.

Re-learning a new normal (``relearn``). A process that moves to a new steady operating point —
a pump settling after a maintenance job, a valve left at a new opening — is not a fault for
ever; a detector that keeps alarming on it teaches operators to ignore it. The policy, the same
in batch and streaming:

1. a *run* counts the consecutive readings whose score is above the threshold (a reading at or
   below it ends the run);
2. once the run has lasted ``relearn`` readings (``"grace"``: as many as the detector was first
   trained on — the new state has then been seen as long as the old one was), the last
   ``relearn`` readings are checked for **stability**: for every scored signal, the median of
   its residual over the window's last half differs from the median over its first half by less
   than ``relearn_tol`` times the residual's own noise (its robust reading-to-reading spread, at
   least the out-of-fold residual spread: the model's noise floor). A step to a new level gives
   a flat residual (stable); a fault that keeps growing does not (its residual at the end of the
   window is larger than at its start), so it is never learned — it goes on alarming;
3. when stable, the model is re-fitted on the original training rows *together with* the window
   (both operating points are then normal — a return to the old one does not alarm), scores of
   the new model are rescaled so that the threshold keeps its value, and the run starts again.

Batch :meth:`~.base.Detector.score` replays the policy over the block from its first row (the
fitted detector itself is not changed); streaming ``learn_one`` applies it to the live model, so
the live flags equal the batch flags on the same rows. ``relearn=None`` (the default) turns it
off. ``relearns_`` (streaming) and ``last_relearns_`` (the rows of the last batch call) record
when it happened.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from twinlib.twin import ewm_causal, ewm_step

from ._prep import CausalPrep, StateGuard, slow_channels
from .base import Detector

__all__ = ["aggregate", "StateGuard", "StateEstimator"]


def aggregate(R: np.ndarray, how: str) -> np.ndarray:
    """One score per row from standardized residuals: ``max`` |r| or ``rms``."""
    if R.ndim == 1:
        R = R[None, :]
    if how == "max":
        return np.max(np.abs(R), axis=1)
    if how == "rms":
        return np.sqrt(np.mean(R * R, axis=1))
    raise ValueError(f"agg must be 'max' or 'rms', got {how!r}")


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


class StateEstimator(Detector):
    """Base of the state estimators: conditioning, guard, warm-up, re-learning (see module)."""

    default_threshold = 4.0

    def __init__(self, *, agg: str = "max", input_smooth: float | None = 0.2,
                 slow: str = "highpass", slow_columns=None, slow_ratio: float = 0.5,
                 slow_tau: float = 30.0, state_columns=(), state_margin: float = 0.05,
                 settle: int = 30, settle_frac: float = 0.2, relearn=None,
                 relearn_tol: float = 1.0, persist: float | None = None, columns=None, q: float | None = 1.0,
                 factor: float = 1.0, threshold: float | None = None, horizon: float | None = None,
                 smooth: float | None = None, grace: int = 400):
        super().__init__(columns=columns, q=q, factor=factor, threshold=threshold,
                         horizon=horizon, smooth=smooth,
                         grace=grace)
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
        self.relearn = relearn
        self.relearn_tol = relearn_tol
        self.persist = persist

    # ------------------------------------------------------------------ to implement
    def _fit_model(self, P: np.ndarray):
        """Fit on conditioned rows ``P``: ``(model, out-of-fold residuals of P in σ units)``."""
        raise NotImplementedError

    def _model_residuals(self, model, P: np.ndarray) -> np.ndarray:
        """Standardized residuals (rows × modelled signals) of conditioned rows."""
        raise NotImplementedError

    def _flagged(self, n: int) -> np.ndarray:
        """Which of the ``n`` modelled signals may raise the score (all by default)."""
        return np.ones(n, dtype=bool)

    # ------------------------------------------------------------------ fitting
    def _relearn_rows(self) -> int | None:
        n = self.relearn
        if n is None or n is False:
            return None
        n = int(self.grace) if n == "grace" else int(n)
        if n < 4:
            raise ValueError(f"relearn must be None, 'grace' or at least 4 readings, got {self.relearn!r}")
        return n

    def _fit(self, A):
        self._relearn_rows()                      # refuse a bad setting before any work
        self.slow_, taus = _slow_indices(self, A)
        self.prep_ = CausalPrep(A.shape[1], self.input_smooth, self.slow_, taus, self.slow)
        self.kept_ = [self.columns_[j] for j in self.prep_.keep]
        P = self.prep_.batch(A)
        self.train_P_ = P
        self.model_, oof = self._fit_model(P)
        self.oof_residuals_ = oof
        self.flagged_ = self._flagged(oof.shape[1])
        self.state_guard_ = StateGuard(self, A)
        s = aggregate(oof[:, self.flagged_], self.agg)
        covered = self.state_guard_.covers(A)   # the threshold from steady, in-range rows only
        self._fit_scores = s[covered] if covered.any() else s
        self._state = None
        self.relearns_ = []

    def _threshold_of(self, oof_scores: np.ndarray) -> float:
        """The threshold :meth:`~.base.Detector._fit_threshold` sets from these scores."""
        saved = getattr(self, "threshold_", None)
        self._fit_threshold(oof_scores)
        t = self.threshold_
        if saved is not None:
            self.threshold_ = saved
        return t

    # ------------------------------------------------------------------ scoring
    def _row_scores(self, model, gain: float, P: np.ndarray, covered: np.ndarray):
        R = self._model_residuals(model, P)[:, self.flagged_]
        return np.where(covered, aggregate(R, self.agg) * gain, 0.0), R

    def _stable(self, R: np.ndarray) -> bool:
        """The window's residuals (rows × scored signals) are flat: a settled new level.

        The medians of the two halves differ by less than ``relearn_tol`` times the residual's
        own noise (robust σ of its reading-to-reading changes, at least 1: the model's noise
        floor). A trend is not noise: its changes from one reading to the next are small while
        the halves drift apart.
        """
        h = len(R) // 2
        d = np.abs(np.median(R[h:], axis=0) - np.median(R[:h], axis=0))
        noise = 1.4826 * np.median(np.abs(np.diff(R, axis=0)), axis=0) / np.sqrt(2.0)
        return bool(np.all(d < float(self.relearn_tol) * np.maximum(noise, 1.0)))

    def _relearned(self, P_window: np.ndarray):
        """A model of the training rows plus the window, and the gain keeping the threshold."""
        P = np.vstack([self.train_P_, P_window])
        model, oof = self._fit_model(P)
        s = aggregate(oof[:, self.flagged_], self.agg)
        t_new = self._threshold_of(s)
        gain = 1.0 if self.threshold is not None or t_new <= 0 else self.threshold_ / t_new
        return model, gain

    def _persisted(self, raw: np.ndarray, prev: float | None) -> np.ndarray:
        """The ``persist`` EWMA of raw scores, continuing from ``prev`` (None: start here)."""
        if self.persist is None or raw.size == 0:
            return raw
        a = float(self.persist)
        if prev is None:
            return ewm_causal(raw, a)
        return ewm_causal(np.r_[prev, raw], a)[1:]

    def _score(self, A):
        P = self.prep_.batch(A)
        covered = self.state_guard_.covers(A)
        raw, R = self._row_scores(self.model_, 1.0, P, covered)
        s = self._persisted(raw, None)
        n = self._relearn_rows()
        self.last_relearns_ = []
        if n is None or len(A) < n:
            return s
        thr = self.threshold_
        start, run = 0, 0
        while True:
            relearnt = None
            for i in range(start, len(s)):
                run = run + 1 if s[i] > thr else 0
                if run >= n and self._stable(R[i - n + 1:i + 1]):
                    relearnt = i
                    break
            if relearnt is None:
                return s
            i = relearnt
            model, gain = self._relearned(P[i - n + 1:i + 1])
            self.last_relearns_.append(i)
            raw2, R2 = self._row_scores(model, gain, P[i + 1:], covered[i + 1:])
            s = np.concatenate([s[:i + 1], self._persisted(raw2, float(s[i]))])
            R = np.vstack([R[:i + 1], R2])
            start, run = i + 1, 0

    def residuals(self, X) -> np.ndarray:
        """Standardized residuals (rows × modelled signals) of a block, filters from its first
        row, under the model as fitted (no re-learning)."""
        self._check_fitted()
        A = self._prepare(X, fitting=False)
        return self._model_residuals(self.model_, self.prep_.batch(A))

    # ------------------------------------------------------------------ streaming
    def _learn_one(self, v):
        if not hasattr(self, "model_"):
            self._buf = getattr(self, "_buf", [])
            self._buf.append(v)
            if len(self._buf) >= self.grace:
                A = np.asarray(self._buf)
                self._fit(A)
                self._fit_threshold(self._fit_scores)
                self._fit_scores = None
                self._buf = []
                for row in A:  # carry the filters on from the rows just learned
                    self._advance(row, learning=False)
            return
        self._advance(v, learning=True)

    def _step(self, v):
        """Filtered row, whether the guard covers it, and the new filter/guard state."""
        st = getattr(self, "_state", None)
        y, filt = self.prep_.step(v, None if st is None else st["filt"])
        ok, hist = self.state_guard_.covers_one(v, None if st is None else st["hist"])
        return y, ok, filt, hist, st

    def _advance(self, v, learning: bool = True):
        """Commit one reading to the filters, the settling window, the persisted score and the
        re-learning run."""
        y, ok, filt, hist, st = self._step(v)
        state = {"filt": filt, "hist": hist, "run": 0, "win": [], "gain": 1.0, "ps": None}
        if st is not None:
            state.update(run=st.get("run", 0), win=st.get("win", []), gain=st.get("gain", 1.0),
                         ps=st.get("ps"))
        n = self._relearn_rows()
        if learning and (n is not None or self.persist is not None):
            raw, _ = self._row_scores(self.model_, state["gain"], y[None, :], np.array([ok]))
            score = float(raw[0])
            if self.persist is not None:
                score = ewm_step(state["ps"], score, float(self.persist))
                state["ps"] = score
            if n is not None:
                state["run"] = state["run"] + 1 if score > self.threshold_ else 0
                state["win"] = (state["win"] + [y.tolist()])[-n:]
                if state["run"] >= n:
                    W = np.asarray(state["win"], dtype=float)
                    R = self._model_residuals(self.model_, W)[:, self.flagged_]
                    if self._stable(R):
                        self.model_, state["gain"] = self._relearned(W)
                        self.relearns_.append(getattr(self, "n_seen_", 0))
                        state["run"], state["win"] = 0, []
        self._state = state

    def _score_one(self, v):
        if not hasattr(self, "model_"):
            return 0.0
        y, ok, _, _, st = self._step(v)
        gain = 1.0 if st is None else st.get("gain", 1.0)
        raw = 0.0
        if ok:
            R = self._model_residuals(self.model_, y[None, :])[:, self.flagged_]
            raw = float(aggregate(R, self.agg)[0] * gain)
        if self.persist is None:
            return raw
        return float(ewm_step(None if st is None else st.get("ps"), raw, float(self.persist)))
