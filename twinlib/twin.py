"""The twin model: what each sensor *should* read, given the machine's operating state.

A threshold table only knows "too high". The twin knows that 80 °C is normal at full load on a hot
day and abnormal at idle, because it has learned each sensor's expected value from the operating
state: ``load``, ``speed`` and ``ambient`` (when the data has them) and the other sensors. The
difference between what a sensor reads and what the twin expects — the *residual* — is near zero
while the machine is healthy and moves when something physical changes (a leak, a blocked
outlet, a failing cooler), even when no threshold is crossed.

Temperature follows load with a thermal lag, so the model also sees exponentially filtered
copies of ``load`` and of the running state (speed above 5 % of its maximum). For each sensor,
``fit`` tries every time constant in ``taus_s`` and keeps the one that explains the healthy data
best (``tau_s_``: the learned thermal time constant — one, because several collinear lags fit
the past well and extrapolate badly). The filters are causal (each row sees only the past) and
run per asset in time order, so interleaved fleet data and a live stream give the same features.

API (stable; other wings build on it)::

    from twinlib.twin import TwinModel
    twin = TwinModel(seed=0).fit(healthy_df)     # sklearn style; returns self
    twin.expected(df)       # DataFrame, one column per sensor: the expected values
    twin.residuals(df)      # DataFrame, observed − expected (standardized=True: in units of σ)
    twin.features(df)       # the design matrix the per-sensor models see (for inspection)
    twin.residual_one(x, memory)   # one live reading (a dict) → dict of residuals; ``memory`` is
                                   # a dict the caller keeps per asset (filter state)

The lag filters start at the first row given, as if the machine had been steady before it, so
pass some history ahead of the rows you care about (an hour covers the slowest thermal lag).

``df`` is any frame with the sensor columns; optional ``asset_id`` (features are computed per
asset), a time column (``ts`` int ms, ``timestamp`` or ``datetime``; without one, rows are 1 s
apart), ``label`` (with ``healthy_only=True``, ``fit`` learns only from rows whose label is
missing or ``"healthy"``; the filters still run over every row), and the state columns. Without
state columns (SKAB's test bed, for example) each sensor is modelled from the other sensors, which
is the classic MSET/regression form of a twin.

``relative_to`` (default ``{"temperature": "ambient"}``) models a sensor as an offset from a
state column — a motor's temperature is ambient plus the heat its load makes — so the twin does
not have to learn the ambient coefficient from a day that may not have shown much of it.

On a fleet (an ``asset_id`` column with several assets) ``per_asset=True`` also fits one model
per asset with at least ``min_asset_rows`` healthy rows (``assets_``: asset → TwinModel) — pumps
differ (rated speed, pump curve, cooling) — and keeps the fleet-wide model for assets it has
not seen; ``expected``/``residuals``/``residual_one`` pick the right one per row.

Learned state (set only by ``fit``): ``sensors_``, ``state_``, ``feature_names_``
(sensor → names), ``coef_`` and ``intercept_`` (sensor → ridge solution on standardized
features), ``feature_mean_``/``feature_scale_`` (sensor → arrays), ``resid_std_`` (sensor → σ of
the training residuals), ``tau_s_`` (sensor → chosen lag time constant), ``dt_s_`` (median
sampling interval seen in training), ``run_speed_`` (the speed above which the machine counts as
running: 5 % of the largest training speed), ``state_range_`` (load/speed range seen in healthy
training, see :meth:`covers`), ``offset_mean_``, ``assets_``.
Missing inputs are replaced by their training mean, so a NULL sensor never blanks the others.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> load = np.repeat(rng.uniform(0.3, 1.0, 20), 200)
>>> df = pd.DataFrame({"load": load, "temperature": 40 + 30 * load + rng.normal(0, 0.2, load.size)})
>>> twin = TwinModel(sensors=["temperature"]).fit(df)
>>> bool(twin.residuals(df)["temperature"].abs().mean() < 1.0)
True
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from twinlib.config import SENSORS

__all__ = ["TwinModel", "LearnedTwin", "STATE_COLUMNS", "NotFittedError", "ewm_causal", "ewm_step"]

#: Operating-state columns the twin uses when a frame has them.
STATE_COLUMNS: tuple[str, ...] = ("load", "speed", "ambient")

# Columns that are never sensors (identifiers, time, labels, operating state).
_NOT_SENSORS = frozenset(
    {"id", "asset_id", "ts", "timestamp", "datetime", "time", "label", "anomaly", "changepoint",
     "bucket", *STATE_COLUMNS}
)
# State columns whose history matters (ambient changes slowly; its lag adds nothing).
_LAGGED_STATE = ("load",)


class NotFittedError(RuntimeError):
    """A model was used before ``fit``."""


def ewm_causal(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponentially weighted moving average, causal, starting at the first value.

    ``y[0] = x[0]``, ``y[t] = y[t-1] + alpha * (x[t] - y[t-1])``; NaNs are carried over by
    filling them with the previous filtered value (why: a missing reading says nothing new).
    Runs in C via ``scipy.signal.lfilter``.
    """
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return x.copy()
    if np.isnan(x).any():
        s = pd.Series(x).ffill().bfill()
        x = s.to_numpy(dtype=float)
        if np.isnan(x).all():
            return x
    a = float(alpha)
    y, _ = lfilter([a], [1.0, a - 1.0], x, zi=[(1.0 - a) * x[0]])
    return y


def ewm_step(prev: float | None, x: float, alpha: float) -> float:
    """One step of :func:`ewm_causal` for streaming code: the filtered value after ``x``.

    ``prev`` None (or NaN) starts the filter at ``x``; a NaN ``x`` keeps ``prev`` (a missing
    reading says nothing new). Feeding a series without gaps through this one value at a time
    gives what :func:`ewm_causal` gives on the whole array, so batch and live filters agree.

    >>> y = None
    >>> for v in [1.0, 3.0, 2.0, 3.0]:
    ...     y = ewm_step(y, v, 0.5)
    >>> bool(np.isclose(y, ewm_causal(np.array([1.0, 3.0, 2.0, 3.0]), 0.5)[-1]))
    True
    """
    if isinstance(x, np.ndarray) or isinstance(prev, np.ndarray):   # one filter per element
        x = np.asarray(x, dtype=float)
        if prev is None:
            return x.copy()
        prev = np.asarray(prev, dtype=float)
        out = prev + alpha * (x - prev)
        out = np.where(np.isnan(prev), x, out)
        return np.where(np.isnan(x), prev, out)
    if x != x:
        return prev
    if prev is None or prev != prev:
        return x
    return prev + alpha * (x - prev)


def _time_seconds(df: pd.DataFrame) -> np.ndarray | None:
    """Seconds since epoch for each row, or None when the frame has no time column."""
    if "ts" in df.columns:
        return df["ts"].to_numpy(dtype=np.float64) / 1000.0
    for col in ("timestamp", "datetime", "time"):
        if col in df.columns:
            s = df[col]
            if pd.api.types.is_numeric_dtype(s.dtype):
                return s.to_numpy(dtype=np.float64) / 1000.0
            t = pd.to_datetime(s)
            if isinstance(t.dtype, pd.DatetimeTZDtype):
                t = t.dt.tz_convert("UTC").dt.tz_localize(None)
            return t.to_numpy(dtype="datetime64[ms]").astype(np.int64) / 1000.0
    if isinstance(df.index, pd.DatetimeIndex):
        return df.index.to_numpy(dtype="datetime64[ms]").astype(np.int64) / 1000.0
    return None


def _groups(df: pd.DataFrame, t: np.ndarray | None) -> list[np.ndarray]:
    """Row positions of each asset, in time order (one group when there is no asset_id)."""
    n = len(df)
    if "asset_id" in df.columns:
        codes, _ = pd.factorize(df["asset_id"], use_na_sentinel=False)
        order = np.lexsort((t, codes)) if t is not None else np.argsort(codes, kind="stable")
        sc = codes[order]
        cuts = np.flatnonzero(np.diff(sc)) + 1
        return np.split(order, cuts)
    if t is not None:
        return [np.argsort(t, kind="stable")]
    return [np.arange(n)]


class _Gram:
    """Standardized cross-products of every candidate feature, so that ridge fits on any subset
    of them cost a small solve (why: fit tries one lag time constant after another)."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        mean = np.nanmean(X, axis=0) if X.shape[1] else np.zeros(0)
        self.mean = np.where(np.isnan(mean), 0.0, mean)
        scale = np.nanstd(X, axis=0) if X.shape[1] else np.zeros(0)
        self.scale = np.where(~np.isfinite(scale) | (scale < 1e-12), 1.0, scale)
        Z = (X - self.mean) / self.scale
        Z[np.isnan(Z)] = 0.0
        self.b0 = float(y.mean())
        yc = y - self.b0
        self.G = Z.T @ Z
        self.zy = Z.T @ yc
        self.yy = float(yc @ yc)

    def ridge(self, idx: list[int], alpha: float):
        """(mean, scale, coef, intercept, residual sum of squares) on the columns ``idx``."""
        if not idx:
            return np.zeros(0), np.zeros(0), np.zeros(0), self.b0, self.yy
        G = self.G[np.ix_(idx, idx)]
        zy = self.zy[idx]
        w = np.linalg.solve(G + alpha * np.eye(len(idx)), zy)
        rss = max(self.yy - 2.0 * float(w @ zy) + float(w @ G @ w), 0.0)
        return self.mean[idx], self.scale[idx], w, self.b0, rss


class TwinModel:
    """Expected value of each sensor from the operating state and the other sensors (ridge)."""

    def __init__(
        self,
        sensors: Sequence[str] | None = None,
        state: Sequence[str] = STATE_COLUMNS,
        taus_s: Sequence[float] = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0,
                                  2400.0, 3600.0),
        use_other_sensors: bool = True,
        alpha: float = 1.0,
        healthy_only: bool = True,
        max_rows: int = 500_000,
        seed: int = 0,
        relative_to: Mapping[str, str] | None = None,
        per_asset: bool = True,
        min_asset_rows: int = 3600,
    ):
        self.sensors = sensors
        self.state = state
        self.taus_s = taus_s
        self.use_other_sensors = use_other_sensors
        self.alpha = alpha
        self.healthy_only = healthy_only
        self.max_rows = max_rows
        self.seed = seed
        self.relative_to = relative_to
        self.per_asset = per_asset
        self.min_asset_rows = min_asset_rows

    # ------------------------------------------------------------------ features
    def _pick_sensors(self, df: pd.DataFrame) -> list[str]:
        if self.sensors is not None:
            missing = [s for s in self.sensors if s not in df.columns]
            if missing:
                raise ValueError(f"sensor columns missing from the data: {missing}")
            return list(self.sensors)
        known = [s for s in SENSORS if s in df.columns]
        if known:
            return known
        generic = [c for c in df.columns
                   if c not in _NOT_SENSORS and pd.api.types.is_numeric_dtype(df[c].dtype)]
        if not generic:
            raise ValueError("no numeric sensor columns in the data")
        return generic

    def _base_features(self, df: pd.DataFrame, state: list[str], dt_fallback: float,
                       taus_s=None) -> pd.DataFrame:
        """State features shared by every sensor model: raw, squared, product, lagged (for the
        time constants ``taus_s``, default all of ``self.taus_s``)."""
        taus_s = self.taus_s if taus_s is None else taus_s
        cols: dict[str, np.ndarray] = {}
        for c in state:
            cols[c] = df[c].to_numpy(dtype=float)
        for c in state:
            if c in _LAGGED_STATE:
                cols[f"{c}^2"] = cols[c] ** 2
        if "load" in state and "speed" in state:
            cols["load*speed"] = cols["load"] * cols["speed"]
        if "speed" in state:
            # a running machine adds a fixed idle heat and vibration on top of the speed terms
            sp = cols["speed"]
            cols["running"] = np.where(np.isnan(sp), np.nan, (sp > self.run_speed_).astype(float))
        lagged = [c for c in state if c in _LAGGED_STATE] + (["running"] if "speed" in state else [])
        if lagged and len(taus_s):
            t = _time_seconds(df)
            for c in lagged:
                for tau in taus_s:
                    cols[f"{c}_ewm{int(tau)}s"] = np.empty(len(df))
            for idx in _groups(df, t):
                dt = dt_fallback
                if t is not None and idx.size > 1:
                    d = np.diff(t[idx])
                    d = d[d > 0]
                    if d.size:
                        dt = float(np.median(d))
                for c in lagged:
                    x = cols[c][idx]
                    for tau in taus_s:
                        a = 1.0 - math.exp(-dt / float(tau))
                        cols[f"{c}_ewm{int(tau)}s"][idx] = ewm_causal(x, a)
        return pd.DataFrame(cols, index=df.index)

    def features(self, df: pd.DataFrame, taus_s=None) -> pd.DataFrame:
        """The full design matrix (state features plus every sensor) for a fitted model
        (``taus_s``: only these lag time constants; default all)."""
        self._check_fitted()
        missing = [c for c in (*self.sensors_, *self.state_) if c not in df.columns]
        if missing:
            raise ValueError(f"columns missing from the data: {missing}")
        base = self._base_features(df, self.state_, self.dt_s_, taus_s)
        for s in self.sensors_:
            base[s] = df[s].to_numpy(dtype=float)
        return base

    def _design_rows(self, df: pd.DataFrame, state: list[str], dt: float,
                     rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The design matrix (state features, then the sensors) at the positions ``rows``
        (ascending) of ``df``: its column names and the float64 rows. Built one asset at a time
        — the lag filters run over all of an asset's rows — keeping only the rows asked for."""
        codes = (pd.factorize(df["asset_id"], use_na_sentinel=False)[0]
                 if "asset_id" in df.columns else np.zeros(len(df), dtype="int64"))
        out, columns = None, None
        for code in np.unique(codes[rows]):
            pos = np.flatnonzero(codes == code)
            part = df.iloc[pos] if len(pos) != len(df) else df
            base = self._base_features(part, state, dt)
            for s in self.sensors_:
                base[s] = part[s].to_numpy(dtype=float)
            if out is None:
                columns = list(base.columns)
                out = np.empty((len(rows), len(columns)))
            at = np.flatnonzero(codes[rows] == code)
            out[at] = base.to_numpy(dtype=float)[np.searchsorted(pos, rows[at])]
        return columns, out

    def _matrix(self, full: pd.DataFrame, sensor: str) -> np.ndarray:
        # one copy, standardised in place (the same operations, in the same memory layout, as
        # ``(X - mean) / scale`` with missing values to 0: a long history's matrix is large)
        X = np.array(full[self.feature_names_[sensor]].to_numpy(dtype=float), order="K")
        X -= self.feature_mean_[sensor]
        X /= self.feature_scale_[sensor]
        X[np.isnan(X)] = 0.0  # missing → training mean
        return X

    # ------------------------------------------------------------------ fit / predict
    def fit(self, df: pd.DataFrame, y=None) -> "TwinModel":
        """Learn each sensor's model from (healthy) data; returns ``self``."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError("TwinModel.fit expects a pandas DataFrame")
        if len(df) < 10:
            raise ValueError(f"TwinModel.fit needs at least 10 rows, got {len(df)}")
        sensors = self._pick_sensors(df)
        state = [c for c in self.state if c in df.columns and df[c].notna().any()]
        t = _time_seconds(df)
        dt = 1.0
        if t is not None:
            d = np.diff(np.sort(t))
            d = d[d > 0]
            if d.size:
                dt = float(np.median(d))
        # set what features() and the design matrix need
        self.sensors_, self.state_, self.dt_s_ = sensors, state, dt
        self.offset_mean_ = {c: float(df[c].mean()) for c in set(self._offsets().values())}
        rows = np.ones(len(df), dtype=bool)
        if self.healthy_only and "label" in df.columns:
            lab = df["label"]
            rows = (lab.isna() | (lab.astype(str) == "healthy")).to_numpy()
        self.state_range_ = {c: (float(df[c][rows].min()), float(df[c][rows].max()))
                             for c in state if c in ("load", "speed") and df[c][rows].notna().any()}
        self.run_speed_ = 0.05 * float(np.nanmax(df["speed"].to_numpy(dtype=float))) \
            if "speed" in state else 0.0
        # Each sensor learns from a seeded subsample of its usable rows (at most max_rows): those
        # are drawn first, and the design matrix is built for them only (its lag filters still
        # run over every row of each asset), not for every row of a fleet's history.
        rng = np.random.default_rng(self.seed)
        picks = {}
        for s in sensors:
            y_all = df[s].to_numpy(dtype=float) - self._offset(df, s)
            ok = rows & ~np.isnan(y_all)
            pos = np.flatnonzero(ok)
            if pos.size < 10:
                raise ValueError(f"not enough usable (healthy, non-missing) rows to fit {s!r}")
            if pos.size > self.max_rows:
                pos = np.sort(rng.choice(pos, self.max_rows, replace=False))
            picks[s] = (pos, y_all[pos])
        needed = np.unique(np.concatenate([pos for pos, _ in picks.values()]))
        columns, base_np = self._design_rows(df, state, dt, needed)
        col_of = {c: i for i, c in enumerate(columns)}
        self.feature_names_, self.coef_, self.intercept_ = {}, {}, {}
        self.feature_mean_, self.feature_scale_, self.resid_std_ = {}, {}, {}
        self.tau_s_ = {}
        for s in sensors:
            pos, y = picks[s]
            instant = [c for c in columns if c not in sensors and "_ewm" not in c]
            others = [o for o in sensors if o != s] if (self.use_other_sensors or not instant) else []
            gram = _Gram(base_np[np.searchsorted(needed, pos)], y)
            best = None
            # one thermal time constant per sensor, the one that explains the training data best
            # (why one: several collinear lags fit the past well and extrapolate badly)
            for tau in (list(self.taus_s) or [None]):
                lagged = [c for c in columns if tau is not None and c.endswith(f"_ewm{int(tau)}s")]
                names = instant + lagged + others
                fit = gram.ridge([col_of[c] for c in names], self.alpha)
                if best is None or fit[4] < best[1][4] - 1e-12:
                    best = (names, fit, tau)
            names, (mean, scale, w, b0, rss), tau = best
            self.feature_names_[s] = names
            self.feature_mean_[s], self.feature_scale_[s] = mean, scale
            self.coef_[s], self.intercept_[s] = w, b0
            self.resid_std_[s] = float(max(np.sqrt(rss / pos.size), 1e-9))
            self.tau_s_[s] = tau
        self.assets_ = {}
        if self.per_asset and "asset_id" in df.columns and df["asset_id"].nunique() > 1:
            params = {k: getattr(self, k) for k in ("sensors", "state", "taus_s", "use_other_sensors",
                                                    "alpha", "healthy_only", "max_rows", "seed",
                                                    "relative_to", "min_asset_rows")}
            params["sensors"] = sensors
            for asset, part in df.groupby("asset_id", sort=True):
                if int(rows[df["asset_id"].to_numpy() == asset].sum()) >= self.min_asset_rows:
                    self.assets_[asset] = TwinModel(**params, per_asset=False).fit(part)
        return self

    def _offsets(self) -> dict:
        rel = {"temperature": "ambient"} if self.relative_to is None else dict(self.relative_to)
        return {s: c for s, c in rel.items() if c in getattr(self, "state_", ())}

    def _offset(self, df, sensor: str):
        """The column a sensor is modelled relative to (temperature above ambient), or 0."""
        col = self._offsets().get(sensor)
        if col is None:
            return 0.0
        # a missing ambient falls back to its training mean (why: never blank the estimate)
        return df[col].fillna(self.offset_mean_[col]).to_numpy(dtype=float)

    def covers(self, x: Mapping, margin: float = 0.05) -> bool:
        """Whether a reading's operating point (load, speed) lies inside what training showed.

        The range is widened by ``margin`` of its span on each side. Outside it the twin is
        extrapolating, and its residuals say more about the model than about the machine.
        """
        self._check_fitted()
        own = getattr(self, "assets_", {}).get(x.get("asset_id"))
        if own is not None:
            return own.covers(x, margin)
        for c, (lo, hi) in self.state_range_.items():
            v = x.get(c)
            if v is None or v != v:
                continue
            pad = margin * (hi - lo) + 1e-9 * max(abs(lo), abs(hi), 1.0)
            if v < lo - pad or v > hi + pad:
                return False
        return True

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("TwinModel is not fitted yet: call fit(healthy_df) first")

    def _pieces(self, df: pd.DataFrame):
        """(row positions, model) pairs: each known asset's own model, the fleet model for the rest."""
        assets = getattr(self, "assets_", {})
        if not assets or "asset_id" not in df.columns:
            return [(np.arange(len(df)), self)]
        ids = df["asset_id"].to_numpy()
        out, rest = [], np.ones(len(df), dtype=bool)
        for asset, model in assets.items():
            pos = np.flatnonzero(ids == asset)
            if pos.size:
                out.append((pos, model))
                rest[pos] = False
        if rest.any():
            out.append((np.flatnonzero(rest), self))
        return out

    def _expected_own(self, df: pd.DataFrame) -> dict:
        # the design matrix with the lags of the chosen time constants only (not all of them)
        used = {c for names in self.feature_names_.values() for c in names}
        taus = [t for t in self.taus_s if any(c.endswith(f"_ewm{int(t)}s") for c in used)]
        full = self.features(df, taus)
        return {s: self._matrix(full, s) @ self.coef_[s] + self.intercept_[s] + self._offset(df, s)
                for s in self.sensors_}

    def _expected_and_scale(self, df: pd.DataFrame):
        self._check_fitted()
        exp = {s: np.full(len(df), np.nan) for s in self.sensors_}
        std = {s: np.ones(len(df)) for s in self.sensors_}
        for pos, model in self._pieces(df):
            part = df.iloc[pos] if len(pos) != len(df) else df
            e = model._expected_own(part)
            for s in self.sensors_:
                exp[s][pos] = e[s]
                std[s][pos] = model.resid_std_[s]
        return exp, std

    def expected(self, df: pd.DataFrame) -> pd.DataFrame:
        """Expected value of each sensor for every row of ``df`` (same index)."""
        exp, _ = self._expected_and_scale(df)
        return pd.DataFrame(exp, index=df.index)

    def residuals(self, df: pd.DataFrame, standardized: bool = False) -> pd.DataFrame:
        """Observed − expected per sensor (NaN where the sensor is missing); σ units if asked."""
        exp, std = self._expected_and_scale(df)
        res = {}
        for s in self.sensors_:
            r = df[s].to_numpy(dtype=float) - exp[s]
            res[s] = r / std[s] if standardized else r
        return pd.DataFrame(res, index=df.index)

    # ------------------------------------------------------------------ streaming
    def residual_one(self, x: Mapping, memory: dict | None = None, standardized: bool = False) -> dict:
        """Residuals for one reading (a mapping of column → value), updating ``memory``.

        ``memory`` holds the lag filters' state for one asset; keep one dict per asset and pass
        it back with the asset's next reading. The filter step uses the time since the previous
        reading (``ts`` ms or ``timestamp``) and falls back to the training interval, so a live
        stream reproduces :meth:`residuals` on the same regularly sampled data.
        """
        self._check_fitted()
        own = getattr(self, "assets_", {}).get(x.get("asset_id"))
        if own is not None:
            return own.residual_one(x, memory, standardized)
        memory = {} if memory is None else memory
        t = None
        if "ts" in x and x["ts"] is not None:
            t = float(x["ts"]) / 1000.0
        elif "timestamp" in x and x["timestamp"] is not None:
            t = pd.Timestamp(x["timestamp"]).value / 1e9
        dt = self.dt_s_
        if t is not None and memory.get("t") is not None and t > memory["t"]:
            dt = t - memory["t"]
        first = "t" not in memory
        row: dict[str, float] = {}
        for c in self.state_:
            v = x.get(c)
            row[c] = float("nan") if v is None else float(v)
        for c in self.state_:
            if c in _LAGGED_STATE:
                row[f"{c}^2"] = row[c] ** 2
        if "load" in self.state_ and "speed" in self.state_:
            row["load*speed"] = row["load"] * row["speed"]
        lagged = [c for c in self.state_ if c in _LAGGED_STATE]
        if "speed" in self.state_:
            sp = row["speed"]
            row["running"] = float("nan") if math.isnan(sp) else float(sp > self.run_speed_)
            lagged.append("running")
        for c in lagged:
            v = row[c]
            for tau in self.taus_s:
                key = f"{c}_ewm{int(tau)}s"
                cur = ewm_step(memory.get(key), v, 1.0 - math.exp(-dt / float(tau)))
                memory[key] = cur
                row[key] = cur
        for s in self.sensors_:
            v = x.get(s)
            row[s] = float("nan") if v is None else float(v)
        if t is not None or first:
            memory["t"] = t
        out = {}
        for s in self.sensors_:
            f = np.array([row[n] for n in self.feature_names_[s]], dtype=float)
            f = (f - self.feature_mean_[s]) / self.feature_scale_[s]
            f = np.where(np.isnan(f), 0.0, f)
            off = 0.0
            col = self._offsets().get(s)
            if col is not None:
                off = row[col] if not math.isnan(row[col]) else self.offset_mean_[col]
            r = row[s] - (float(f @ self.coef_[s]) + self.intercept_[s] + off)
            out[s] = r / self.resid_std_[s] if standardized else r
        return out


class LearnedTwin:
    """Each measured signal predicted from the state signals and the other measured signals.

    The plain, kind-agnostic form of the twin (no lag filters, no sensor names built in): one
    ridge regression per measured signal over arbitrary column names, fitted on healthy history.
    ``resid_std_`` is the spread of *out-of-fold* residuals — the training rows are cut into
    ``folds`` contiguous blocks, each predicted by a model fitted without it — because in-sample
    residuals understate what the model does on readings it has not seen.

    ``measured`` (default: every numeric column that is not an id, time, label or ``state``
    column) and ``state`` (default: none) are column names. Missing inputs count as their
    training mean. The fitted model is plain data: :meth:`to_dict` gives JSON-able lists and
    numbers, :meth:`from_dict` rebuilds it (no pickle).

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> load = rng.uniform(0.3, 1.0, 500)
    >>> df = pd.DataFrame({"load": load, "flow": 30 * load + rng.normal(0, 0.3, 500),
    ...                    "current": 2 * load + rng.normal(0, 0.02, 500)})
    >>> twin = LearnedTwin(state=["load"]).fit(df)
    >>> leak = df.assign(flow=df["flow"] - 3.0)          # flow low for the load and the current
    >>> bool(twin.residuals(leak, standardized=True)["flow"].mean() < -5)
    True
    >>> LearnedTwin.from_dict(twin.to_dict()).predict(df).equals(twin.predict(df))
    True
    """

    def __init__(self, measured: Sequence[str] | None = None, state: Sequence[str] = (),
                 alpha: float = 1.0, folds: int = 5):
        self.measured = measured
        self.state = state
        self.alpha = alpha
        self.folds = folds

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("LearnedTwin is not fitted yet: call fit(healthy_df) first")

    @staticmethod
    def _ridge(X: np.ndarray, y: np.ndarray, alpha: float):
        mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        sd = X.std(axis=0) if len(X) else np.ones(X.shape[1])
        sd = np.where(sd < 1e-12, 1.0, sd)
        Z = (X - mean) / sd
        b0 = float(y.mean())
        w = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (y - b0))
        return mean, sd, w, b0

    def fit(self, df: pd.DataFrame, y=None) -> "LearnedTwin":
        """Learn every measured signal's model from healthy rows; returns ``self``."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError("LearnedTwin.fit expects a pandas DataFrame")
        state = [c for c in self.state if c in df.columns]
        if self.measured is not None:
            measured = list(self.measured)
            missing = [c for c in measured if c not in df.columns]
            if missing:
                raise ValueError(f"measured columns missing from the data: {missing}")
        else:
            measured = [c for c in df.columns if c not in _NOT_SENSORS and c not in state
                        and pd.api.types.is_numeric_dtype(df[c].dtype)]
        if not measured:
            raise ValueError("no measured columns to model")
        if len(df) < max(10, 2 * int(self.folds)):
            raise ValueError(f"LearnedTwin.fit needs at least {max(10, 2 * int(self.folds))} rows, "
                             f"got {len(df)}")
        cols = state + measured
        A = df[cols].to_numpy(dtype=float)
        fill = np.nanmean(A, axis=0)
        fill = np.where(np.isnan(fill), 0.0, fill)
        A = np.where(np.isnan(A), fill, A)
        n = len(A)
        blocks = [b for b in np.array_split(np.arange(n), int(self.folds)) if b.size]
        self.state_, self.measured_, self.models_ = state, measured, {}
        self.oof_residuals_ = np.empty((n, len(measured)))   # not serialised: for thresholds
        for j, m in enumerate(measured):
            inputs = [c for c in cols if c != m]
            idx = [cols.index(c) for c in inputs]
            X, yv = A[:, idx], A[:, len(state) + j]
            oof = np.empty(n)
            for b in blocks:
                rest = np.ones(n, dtype=bool)
                rest[b] = False
                mu, sd, w, b0 = self._ridge(X[rest], yv[rest], float(self.alpha))
                oof[b] = yv[b] - (((X[b] - mu) / sd) @ w + b0)
            self.oof_residuals_[:, j] = oof
            mu, sd, w, b0 = self._ridge(X, yv, float(self.alpha))
            self.models_[m] = {"inputs": inputs, "mean": mu.tolist(), "scale": sd.tolist(),
                               "coef": w.tolist(), "intercept": b0,
                               "fill": [float(fill[cols.index(c)]) for c in inputs],
                               "resid_std": float(max(np.std(oof), 1e-9))}
        self.resid_std_ = {m: self.models_[m]["resid_std"] for m in measured}
        # the operating range training saw (covers(): outside it the twin has no opinion)
        self.ranges_ = {c: [float(np.nanmin(df[c])), float(np.nanmax(df[c]))] for c in state
                        if df[c].notna().any()}
        self._prepare_fast()
        return self

    def _prepare_fast(self) -> None:
        self._fast = {m: (p["inputs"], np.asarray(p["fill"], dtype=float),
                          np.asarray(p["mean"], dtype=float), np.asarray(p["scale"], dtype=float),
                          np.asarray(p["coef"], dtype=float), float(p["intercept"]))
                      for m, p in self.models_.items()}

    def covers(self, x: Mapping, margin: float = 0.05) -> bool:
        """Whether the operating state of reading ``x`` lies inside the range training showed
        (widened by ``margin`` of its span). Without state signals every reading is covered."""
        self._check_fitted()
        for c, (lo, hi) in getattr(self, "ranges_", {}).items():
            v = x.get(c)
            if v is None or v != v:
                continue
            pad = margin * (hi - lo)
            if v < lo - pad or v > hi + pad:
                return False
        return True

    def residual_one(self, x: Mapping, standardized: bool = False) -> dict:
        """Observed − expected of one reading (a mapping of signal → value), per measured signal
        the reading carries (None for a signal it lacks); what :meth:`residuals` gives row by row."""
        self._check_fitted()
        if getattr(self, "_fast", None) is None:
            self._prepare_fast()
        out = {}
        for m, (inputs, fill, mean, scale, coef, b0) in self._fast.items():
            y = x.get(m)
            if y is None or y != y:
                out[m] = None
                continue
            v = np.array([x.get(c) for c in inputs], dtype=float)
            v = np.where(np.isnan(v), fill, v)
            r = float(y) - (float(((v - mean) / scale) @ coef) + b0)
            out[m] = r / self.resid_std_[m] if standardized else r
        return out

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Expected value of each measured signal for every row (same index)."""
        self._check_fitted()
        out = {}
        for m, p in self.models_.items():
            missing = [c for c in p["inputs"] if c not in df.columns]
            if missing:
                raise ValueError(f"columns missing from the data: {missing}")
            X = df[p["inputs"]].to_numpy(dtype=float)
            X = np.where(np.isnan(X), np.asarray(p["fill"]), X)
            Z = (X - np.asarray(p["mean"])) / np.asarray(p["scale"])
            out[m] = Z @ np.asarray(p["coef"]) + p["intercept"]
        return pd.DataFrame(out, index=df.index)

    def residuals(self, df: pd.DataFrame, standardized: bool = False) -> pd.DataFrame:
        """Observed − expected per measured signal (in out-of-fold σ units if asked)."""
        exp = self.predict(df)
        res = {}
        for m in self.measured_:
            r = df[m].to_numpy(dtype=float) - exp[m].to_numpy()
            res[m] = r / self.resid_std_[m] if standardized else r
        return pd.DataFrame(res, index=df.index)

    def to_dict(self) -> dict:
        """The fitted model as JSON-able data (lists, numbers, strings)."""
        self._check_fitted()
        return {"type": "LearnedTwin", "version": 1,
                "params": {"measured": self.measured if self.measured is None else list(self.measured),
                           "state": list(self.state), "alpha": float(self.alpha),
                           "folds": int(self.folds)},
                "state": list(self.state_), "measured": list(self.measured_),
                "models": self.models_, "ranges": getattr(self, "ranges_", {})}

    @classmethod
    def from_dict(cls, data: Mapping) -> "LearnedTwin":
        """Rebuild a fitted model from :meth:`to_dict`'s output."""
        if data.get("type") != "LearnedTwin":
            raise ValueError("not a LearnedTwin description (type field)")
        twin = cls(**data["params"])
        twin.state_ = list(data["state"])
        twin.measured_ = list(data["measured"])
        twin.models_ = {m: dict(p) for m, p in data["models"].items()}
        twin.resid_std_ = {m: float(p["resid_std"]) for m, p in twin.models_.items()}
        twin.ranges_ = {str(c): [float(lo), float(hi)]
                        for c, (lo, hi) in (data.get("ranges") or {}).items()}
        twin._prepare_fast()
        return twin
