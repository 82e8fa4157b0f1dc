"""Rolling-window features that describe how each sensor of an asset is behaving right now.

Every feature at a reading is computed from that reading and the readings of the same asset
before it (trailing, right-closed time windows), never from later ones, so the features a live
system computes equal the ones used in training. Per sensor (names from ``sensors``, by default
the pump's; the operating-state columns come from ``state``):

* ``<sensor>_spread``  standard deviation over the short window;
* ``<sensor>_delta``   short-window mean minus long-window mean (a recent change);
* ``<sensor>_slope``   least-squares slope over the long window, units per hour;
* ``<sensor>_jump``    largest step between consecutive readings in the short window (spikes);
* ``<sensor>_flat``    fraction of unchanged consecutive readings in the short window (stuck);
* ``<sensor>_flat_run`` seconds since the value last changed (the flat-line rule's evidence),
  capped at the long window;
* ``<sensor>_jump_ratio`` the short window's largest step over the long window's mean step
  (the jump rule's evidence, relative to the sensor's own noise);
* ``<sensor>_residual_slope`` slope of (observed - twin expectation) over the long window, per hour;
* ``<sensor>_residual_shift`` short-window mean of the residual minus its mean over the baseline
  window (hours);
* ``<sensor>_residual_z`` the same shift in units of the twin's healthy residual σ;
* ``<sensor>_residual_persist`` share of the long window where the residual stayed more than
  3 σ away from its baseline (the twin-residual rule's persistence);
* ``<sensor>_residual_duty_corr`` correlation of the residual with the twin's expected value
  of the same sensor over ``corr_window_s`` (2 h): a real fault scales with the duty (wear,
  blockage, a failing cooler), a drifting sensor adds the same offset at any duty.

What tells a drifting *sensor* from a real fault of the same sensor (both move one residual
away from the clean twin, while the other sensors agree with it): a real fault acts through the
machine, so its residual scales with the duty-dependent part of the expected value (the part
above the sensor's reference: temperature above ambient, pressure and vibration as predicted),
while a drift adds the same ramp at any duty, in a straight line of time. Over the
``trend_window_s`` (2 h, long enough to see a load change):

* ``<sensor>_duty_elasticity`` the residual regressed on time *and* on the duty-dependent part
  of the expectation (partial least squares): the duty coefficient times the mean duty part over
  the mean residual — about 1 when the residual scales with the duty (a real fault), about 0 for
  a constant offset or ramp (a drift); NaN when the duty did not vary or the residual is small;
* ``<sensor>_duty_coef_z`` / ``<sensor>_trend_coef_z`` the two partial effects in σ;
* ``<sensor>_residual_r2`` / ``<sensor>_ratio_r2`` how well a straight line of time explains
  the residual, and the residual *relative* to the duty part (over the long window), and
  ``<sensor>_residual_r2_trend`` / ``<sensor>_ratio_r2_trend`` the same over the trend window:
  a drift is a straight line in the residual, a real fault in the ratio;
* ``<sensor>_ratio_shift`` the short-window mean of that ratio minus its baseline mean;
* ``<sensor>_residual_slope_trend`` the residual's slope over the trend window in σ per hour,
  and ``<sensor>_residual_accel`` the long-window slope minus it (wear accelerates, a drift
  does not);
* ``<sensor>_noise_ratio`` the short window's mean step over the baseline's (a machine fault
  that scales a signal scales its noise too; a drift adds to the reading, not to its noise).

Every feature is relative — a change, a slope, a spread — never an absolute level. Pumps differ
(rated speed, pump curve, thermal constants), so absolute levels and raw twin residuals let a
classifier learn *which pump* it is looking at. The residuals come from a *clean* twin
(:class:`twinlib.twin.TwinModel` with the operating state only: load, speed, ambient), fitted on
the healthy rows of the training data outside recovery windows: a twin that also reads the other
sensors lets a pressure fault move the temperature residual as much as a failing cooler does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twinlib.config import SENSORS

__all__ = [
    "FEATURE_VERSION",
    "FeatureSpec",
    "FeatureBuilder",
    "STATE",
    "reading_times",
]

#: Bumped whenever a feature's definition changes; a model card with another version is refused.
FEATURE_VERSION = 4

#: The pump's operating-state signals (the asset kind will give them for other machines).
STATE: tuple[str, ...] = ("load", "speed", "ambient")

_PER_SENSOR = ("spread", "delta", "slope", "jump", "flat", "flat_run", "jump_ratio",
               "residual_slope", "residual_shift", "residual_z", "residual_persist",
               "residual_duty_corr", "duty_elasticity", "duty_coef_z", "trend_coef_z",
               "residual_r2", "ratio_r2", "residual_r2_trend", "ratio_r2_trend", "ratio_shift",
               "residual_slope_trend", "residual_accel", "noise_ratio",
               "local_slope", "local_slope_t", "local_slope_long", "local_z_long", "local_noise",
               "local_run")


@dataclass(frozen=True)
class FeatureSpec:
    """The windows and signals that define the feature set (recorded in every model card)."""

    window_s: int = 300
    long_window_s: int = 1800
    baseline_s: int = 21600
    sensors: tuple[str, ...] = field(default=tuple(SENSORS))
    state: tuple[str, ...] = field(default=STATE)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensors", tuple(self.sensors))
        object.__setattr__(self, "state", tuple(self.state))
        if not (0 < self.window_s <= self.long_window_s <= self.baseline_s):
            raise ValueError("need 0 < window_s <= long_window_s <= baseline_s, got "
                             f"{self.window_s}, {self.long_window_s}, {self.baseline_s}")
        if not self.sensors:
            raise ValueError("a feature set needs at least one sensor")

    def names(self) -> list[str]:
        """Feature column names, in the order the classifiers see them."""
        return [f"{s}_{k}" for s in self.sensors for k in _PER_SENSOR]

    def to_dict(self) -> dict:
        return {"window_s": self.window_s, "long_window_s": self.long_window_s,
                "baseline_s": self.baseline_s, "sensors": list(self.sensors),
                "state": list(self.state)}


def reading_times(df: pd.DataFrame) -> np.ndarray:
    """Integer epoch milliseconds of each row, from a ``ts`` column or a ``timestamp`` column."""
    if "ts" in df.columns:
        return df["ts"].to_numpy(dtype="int64")
    if "timestamp" not in df.columns:
        raise ValueError("readings need a 'ts' (int ms) or 'timestamp' column")
    ts = df["timestamp"]
    if pd.api.types.is_integer_dtype(ts):
        return ts.to_numpy(dtype="int64")
    ts = pd.to_datetime(ts, utc=True)
    return ts.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]").astype("int64")


class FeatureBuilder:
    """Turns raw readings into the causal feature matrix; learns only the twin's healthy baseline.

    ``fit(df)`` fits a state-only :class:`twinlib.twin.TwinModel` on the healthy rows of ``df``
    (label ``"healthy"`` or missing; label them ``"recovery"`` to keep them out, see
    :func:`twinlib.models.labels.with_recovery`). ``transform(df)`` returns one feature row per
    input row, aligned with ``df.index``. ``sensors`` and ``state`` name the signals (default:
    the pump's).
    """

    def __init__(self, window_s: int = 300, long_window_s: int = 1800, baseline_s: int = 21600,
                 max_twin_rows: int = 200_000, seed: int = 0,
                 sensors: Sequence[str] | None = None, state: Sequence[str] | None = None):
        self.window_s = window_s
        self.long_window_s = long_window_s
        self.baseline_s = baseline_s
        self.max_twin_rows = max_twin_rows
        self.seed = seed
        self.sensors = sensors
        self.state = state

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(self.window_s, self.long_window_s, self.baseline_s,
                           tuple(self.sensors or SENSORS), tuple(STATE if self.state is None
                                                                 else self.state))

    def fit(self, df: pd.DataFrame) -> "FeatureBuilder":
        from twinlib.twin import TwinModel

        spec = self.spec
        missing = [s for s in spec.sensors if s not in df.columns]
        if missing:
            raise ValueError(f"sensor columns missing from the data: {missing}")
        state = [c for c in spec.state if c in df.columns and df[c].notna().any()]
        # The clean twin: expected values from the operating state only, so a fault of one
        # sensor is not echoed into the others' residuals. Without any state column (a
        # recording of sensors only) the other sensors are the only explanation left.
        self.twin_ = TwinModel(sensors=list(spec.sensors), state=tuple(state),
                               use_other_sensors=not state, healthy_only=True, per_asset=False,
                               max_rows=self.max_twin_rows, seed=self.seed).fit(df)
        self.state_ = state
        # The ratio features divide by the duty part, floored at a fifth of its typical size
        # on the healthy training rows (a stopped machine has none): fixed at fit, so causal.
        healthy = df
        if "label" in df.columns:
            lab = df["label"].astype(object)
            healthy = df[(lab.isna() | (lab.astype(str) == "healthy")).to_numpy()]
        healthy = healthy if len(healthy) else df
        duty = _duty_parts(self.twin_, healthy,
                           self.twin_.expected(healthy)[list(spec.sensors)], spec.sensors)
        self.duty_floor_ = {s: max(0.2 * float(np.nanmedian(np.abs(duty[s].to_numpy())))
                                   if duty[s].notna().any() else 0.0, 1e-9)
                            for s in spec.sensors}
        self.feature_names_ = spec.names()
        return self

    def transform(self, df: pd.DataFrame, rows=None) -> pd.DataFrame:
        """One float32 feature row per reading of ``df`` (aligned with ``df.index``).

        ``rows`` (positions in ``df``): only those readings' features, in that order, indexed
        ``df.index[rows]`` — the values of ``transform(df).iloc[rows]``. They are computed asset
        by asset (each asset's windows still run over all of its readings) and each asset keeps
        only the rows asked for, so a training fleet's full matrix (millions of readings × ~90
        features) is never held; an asset with no row asked for is not computed at all.
        """
        if not hasattr(self, "twin_"):
            raise RuntimeError("FeatureBuilder is not fitted; call fit() first")
        if rows is not None:
            return self._transform_rows(df, rows)
        if len(df) == 0:
            return pd.DataFrame(columns=self.feature_names_, dtype="float64")
        spec = self.spec
        expected = self.twin_.expected(df)[list(spec.sensors)].astype("float64")
        sigma = {s: float(self.twin_.resid_std_[s]) for s in spec.sensors}
        duty = _duty_parts(self.twin_, df, expected, spec.sensors)
        ms = reading_times(df)
        parts = []
        assets = df["asset_id"].to_numpy() if "asset_id" in df.columns else np.zeros(len(df))
        for asset in pd.unique(assets):
            pos = np.flatnonzero(assets == asset)
            order = pos[np.argsort(ms[pos], kind="stable")]
            feats = _asset_features(df.iloc[order], ms[order], expected.iloc[order],
                                    duty.iloc[order], sigma, self.duty_floor_, spec)
            # float32 per asset (the trees compare in float32 anyway): the fleet's matrix is
            # assembled at half the size, with the values a float64 one cast at the end has
            feats = feats[self.feature_names_].astype("float32")
            feats.index = df.index[order]
            parts.append(feats)
        return pd.concat(parts).reindex(df.index)

    def _transform_rows(self, df: pd.DataFrame, rows) -> pd.DataFrame:
        """``transform(df, rows)``: features of the rows at positions ``rows`` only."""
        rows = np.asarray(rows)
        if rows.ndim != 1 or (len(rows) and not np.issubdtype(rows.dtype, np.integer)):
            raise ValueError("rows must be a one-dimensional array of row positions")
        rows = rows.astype("int64", copy=False)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(df)):
            raise ValueError(f"rows outside the {len(df)} readings given")
        out = np.empty((len(rows), len(self.feature_names_)), dtype="float32")
        if not len(rows):
            return pd.DataFrame(out, columns=self.feature_names_, index=df.index[rows])
        spec = self.spec
        # The twin's expectation over the whole frame at once, as transform(df) computes it: a
        # few columns, and per asset it would not be the same to the last bit (BLAS splits a
        # matrix-vector product by its length; measured: 1 row in ~10^5 differs by 1 ulp).
        expected = self.twin_.expected(df)[list(spec.sensors)].astype("float64")
        sigma = {s: float(self.twin_.resid_std_[s]) for s in spec.sensors}
        duty = _duty_parts(self.twin_, df, expected, spec.sensors)
        ms = reading_times(df)
        assets = df["asset_id"].to_numpy() if "asset_id" in df.columns else np.zeros(len(df))
        codes, _ = pd.factorize(assets, use_na_sentinel=False)
        wanted = codes[rows]
        for code in np.unique(wanted):
            pos = np.flatnonzero(codes == code)
            by_time = np.argsort(ms[pos], kind="stable")
            order = pos[by_time]
            feats = _asset_features(df.iloc[order], ms[order], expected.iloc[order],
                                    duty.iloc[order], sigma, self.duty_floor_, spec)
            rank = np.empty(len(pos), dtype="int64")  # a row's place in the asset's time order
            rank[by_time] = np.arange(len(pos))
            at = np.flatnonzero(wanted == code)
            loc = rank[np.searchsorted(pos, rows[at])]
            out[at] = feats[self.feature_names_].iloc[loc].to_numpy(dtype="float64") \
                .astype("float32")
        return pd.DataFrame(out, columns=self.feature_names_, index=df.index[rows])


#: Window of the residual-versus-duty correlation: long enough to see a load change.
_CORR_WINDOW = "7200s"
#: Window of the drift-versus-fault regressions (capped at the baseline window).
_TREND_WINDOW_S = 7200
#: Readings a trend-window regression needs before it says anything.
_TREND_MIN_PERIODS = 120


def _duty_parts(twin, df: pd.DataFrame, expected: pd.DataFrame, sensors) -> pd.DataFrame:
    """The duty-dependent part of each expected value: above the sensor's reference column
    (temperature above ambient) where the twin models it so, else the expected value itself."""
    offsets = twin._offsets()
    out = {}
    for s in sensors:
        ref = twin._offset(df, s) if offsets.get(s) in df.columns else 0.0
        out[s] = expected[s].to_numpy(dtype="float64") - ref
    return pd.DataFrame(out, index=expected.index)


def _r2_time(y: pd.Series, hours: pd.Series, window: str, min_periods: int) -> np.ndarray:
    """Rolling R² of a straight line of time through ``y`` (0 where undefined)."""
    roll = y.rolling(window, min_periods=min_periods)
    cov = roll.cov(hours)
    var_y = roll.var()
    var_t = hours.rolling(window, min_periods=min_periods).var()
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = (cov * cov / (var_y * var_t)).to_numpy()
    return np.where(np.isfinite(r2), np.clip(r2, 0.0, 1.0), 0.0)


def _drift_features(x: pd.Series, resid: pd.Series, duty: pd.Series, hours: pd.Series,
                    sigma: float, floor: float, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The drift-versus-fault evidence of one sensor (see the module docstring)."""
    sensor = x.name
    trend = f"{min(_TREND_WINDOW_S, spec.baseline_s)}s"
    long, short, base = f"{spec.long_window_s}s", f"{spec.window_s}s", f"{spec.baseline_s}s"
    mp = _TREND_MIN_PERIODS
    cols: dict[str, np.ndarray] = {}

    def roll(y):
        return y.rolling(trend, min_periods=mp)

    var_t, var_b = roll(hours).var(), roll(duty).var()
    c_tb, c_rt, c_rb = roll(hours).cov(duty), roll(resid).cov(hours), roll(resid).cov(duty)
    det = var_t * var_b - c_tb * c_tb
    with np.errstate(divide="ignore", invalid="ignore"):
        det = det.where(det > 0)
        coef_b = (var_t * c_rb - c_tb * c_rt) / det
        coef_t = (var_b * c_rt - c_tb * c_rb) / det
        mean_b, mean_r = roll(duty).mean(), roll(resid).mean()
        sd_b = np.sqrt(var_b)
        varied = (sd_b / mean_b.abs()) > 0.03
        elast = (coef_b * mean_b / mean_r).where(varied & (mean_r.abs() > 2.0 * sigma))
        cols[f"{sensor}_duty_elasticity"] = np.clip(elast.to_numpy(), -3.0, 3.0)
        cols[f"{sensor}_duty_coef_z"] = (coef_b * sd_b / sigma).where(varied).to_numpy()
        cols[f"{sensor}_trend_coef_z"] = (coef_t * np.sqrt(var_t) / sigma).to_numpy()
        # the residual relative to the duty part (floored: a stopped machine has none)
        ratio = resid / duty.where(duty.abs() > floor, floor)
    cols[f"{sensor}_residual_r2"] = _r2_time(resid, hours, long, 30)
    cols[f"{sensor}_ratio_r2"] = _r2_time(ratio, hours, long, 30)
    cols[f"{sensor}_residual_r2_trend"] = _r2_time(resid, hours, trend, mp)
    cols[f"{sensor}_ratio_r2_trend"] = _r2_time(ratio, hours, trend, mp)
    cols[f"{sensor}_ratio_shift"] = (ratio.rolling(short, min_periods=1).mean()
                                     - ratio.rolling(base, min_periods=1).mean()).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_trend = (c_rt / var_t.where(var_t > 0)) / sigma
        var_l = hours.rolling(long, min_periods=mp).var()
        slope_long = (resid.rolling(long, min_periods=mp).cov(hours) / var_l.where(var_l > 0)) / sigma
    cols[f"{sensor}_residual_slope_trend"] = slope_trend.to_numpy()
    cols[f"{sensor}_residual_accel"] = (slope_long - slope_trend).to_numpy()
    step = x.diff().abs()
    short_step = step.rolling(short, min_periods=2).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        cols[f"{sensor}_noise_ratio"] = (short_step / short_step.rolling(base, min_periods=2)
                                         .mean()).to_numpy()
    return cols


def _asset_features(frame: pd.DataFrame, ms: np.ndarray, expected: pd.DataFrame,
                    duty: pd.DataFrame, sigma: dict, floors: dict,
                    spec: FeatureSpec) -> pd.DataFrame:
    """Features of one asset's readings, sorted by time (trailing windows only)."""
    index = pd.DatetimeIndex(ms.astype("datetime64[ms]"))
    short, long, base = f"{spec.window_s}s", f"{spec.long_window_s}s", f"{spec.baseline_s}s"
    hours = pd.Series((ms - ms[0]) / 3_600_000.0, index=index)
    var_t = hours.rolling(long).var()
    cols: dict[str, np.ndarray] = {}
    for sensor in spec.sensors:
        x = pd.Series(frame[sensor].to_numpy(dtype="float64"), index=index)
        rs = x.rolling(short, min_periods=1)
        level = rs.mean()
        cols[f"{sensor}_spread"] = rs.std(ddof=0).to_numpy()
        cols[f"{sensor}_delta"] = (level - x.rolling(long, min_periods=1).mean()).to_numpy()
        cols[f"{sensor}_slope"] = _slope(x, hours, var_t, long)
        step = x.diff()
        jump = step.abs().rolling(short, min_periods=1).max()
        cols[f"{sensor}_jump"] = jump.to_numpy()
        cols[f"{sensor}_flat"] = (step == 0).astype("float64").where(step.notna()) \
            .rolling(short, min_periods=1).mean().to_numpy()
        cols[f"{sensor}_flat_run"] = _flat_run_s(x.to_numpy(), ms, spec.long_window_s)
        mean_step = step.abs().rolling(long, min_periods=2).mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"{sensor}_jump_ratio"] = np.minimum(
                (jump / mean_step.where(mean_step > 0)).to_numpy(), 1e3)
        exp = pd.Series(expected[sensor].to_numpy(), index=index)
        resid = x - exp
        resid_level = resid.rolling(short, min_periods=1).mean()
        resid_base = resid.rolling(base, min_periods=1).mean()
        shift = resid_level - resid_base
        cols[f"{sensor}_residual_shift"] = shift.to_numpy()
        cols[f"{sensor}_residual_z"] = (shift / sigma[sensor]).to_numpy()
        away = ((resid - resid_base).abs() > 3.0 * sigma[sensor]).astype("float64")
        cols[f"{sensor}_residual_persist"] = away.rolling(long, min_periods=1).mean().to_numpy()
        corr = resid.rolling(_CORR_WINDOW, min_periods=60).corr(exp)
        cols[f"{sensor}_residual_duty_corr"] = corr.where(np.isfinite(corr), 0.0).to_numpy()
        cols[f"{sensor}_residual_slope"] = _slope(resid, hours, var_t, long)
        x.name = sensor
        duty_s = pd.Series(duty[sensor].to_numpy(), index=index)
        cols.update(_drift_features(x, resid, duty_s, hours, sigma[sensor], floors[sensor], spec))
        cols.update(_local_features(x, resid, duty_s, ms, sigma[sensor], floors[sensor], spec))
    return pd.DataFrame(cols)


#: Readings the per-asset correction needs in its window before it says anything.
_LOCAL_MIN_PERIODS = 120
#: Ridge of the per-asset duty coefficient, as a share of the mean duty part: with a load that
#: barely moved in the window the coefficient shrinks to 0 (an offset only) instead of guessing.
_LOCAL_RIDGE = 0.05
#: A one-minute mean this many standard errors from the corrected twin starts a run.
_LOCAL_RUN_K = 3.0


def _local_features(x: pd.Series, resid: pd.Series, duty: pd.Series, ms: np.ndarray,
                    sigma: float, floor: float, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The twin corrected to this asset: small, slow or early changes against its own past.

    The clean twin is fitted over a fleet, and pumps differ (pump curve, static head, bearing
    noise), so a residual moves with the load by a pump-specific amount that can hide a leak's
    first bar or a bearing's first per cent. Here the residual is regressed on the duty part of
    the expectation over the baseline window that *ended a long window ago* (ridge towards an
    offset only), so the correction is the asset's own healthy behaviour, not the last half
    hour's fault; what the correction does not explain now is the early evidence:

    * ``local_slope`` / ``local_slope_long``: the residual's time trend over twice the short /
      the long window, with the duty held fixed (a load change within the window is the
      duty term's, not a trend), per hour, relative to the duty part — a leak takes 45 % of
      the pump's head over its course, a straight ramp these see within minutes — and
      ``local_slope_t`` the short one's t statistic (a transient the line does not fit has a
      large standard error, a ramp a small one);
    * ``local_z_long``: the corrected residual over the long window, in units of the
      correction's own residual σ;
    * ``local_noise``: the long window's mean step over the lagged baseline's (noise growth);
    * ``local_run``: seconds the one-minute mean of the corrected residual has stayed on one
      side, more than ``_LOCAL_RUN_K`` standard errors away (signed: negative below; a
      CUSUM-like persistence).
    """
    sensor = x.name
    long, base = f"{spec.long_window_s}s", f"{spec.baseline_s}s"
    mp = _LOCAL_MIN_PERIODS
    cols: dict[str, np.ndarray] = {}
    # the time trend with the duty held fixed, relative to the duty part (per hour)
    hours = pd.Series((ms - ms[0]) / 3_600_000.0, index=x.index)
    cols[f"{sensor}_local_slope"], cols[f"{sensor}_local_slope_t"] = _partial_time_slope(
        resid, duty, hours, f"{2 * spec.window_s}s", min(mp, 60), floor)
    cols[f"{sensor}_local_slope_long"], _ = _partial_time_slope(
        resid, duty, hours, f"{spec.long_window_s}s", min(mp, 60), floor)
    roll_r, roll_d = resid.rolling(base, min_periods=mp), duty.rolling(base, min_periods=mp)
    mean_r, mean_d = roll_r.mean().to_numpy(), roll_d.mean().to_numpy()
    var_r, var_d = roll_r.var().to_numpy(), roll_d.var().to_numpy()
    cov = roll_r.cov(duty).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ridge = (_LOCAL_RIDGE * np.maximum(np.abs(mean_d), floor)) ** 2
        beta = cov / (var_d + ridge)
        fit_var = var_r - 2.0 * beta * cov + beta * beta * var_d
    # coefficients of the window that ended a long window before each reading
    j = np.searchsorted(ms, ms - spec.long_window_s * 1000, side="right") - 1
    ok = j >= 0
    jj = np.where(ok, j, 0)

    def lagged(a):
        return np.where(ok, a[jj], np.nan)

    sd = np.sqrt(np.maximum(lagged(fit_var), (0.2 * sigma) ** 2))
    e = resid.to_numpy() - (lagged(mean_r) + lagged(beta) * (duty.to_numpy() - lagged(mean_d)))
    ez = pd.Series(e / sd, index=x.index)
    cols[f"{sensor}_local_z_long"] = ez.rolling(long, min_periods=1).mean().to_numpy()
    step = x.diff().abs()
    step_base = step.rolling(base, min_periods=mp).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cols[f"{sensor}_local_noise"] = (step.rolling(long, min_periods=2).mean().to_numpy()
                                         / lagged(step_base))
    minute = ez.rolling("60s", min_periods=1)
    m1, n1 = minute.mean().to_numpy(), minute.count().to_numpy()
    k = _LOCAL_RUN_K / np.sqrt(np.maximum(n1, 1.0))
    side = np.where(m1 > k, 1, np.where(m1 < -k, -1, 0))
    side = np.where(np.isfinite(m1), side, 0)
    cols[f"{sensor}_local_run"] = _run_s(side, ms, spec.long_window_s)
    return cols


def _partial_time_slope(resid: pd.Series, duty: pd.Series, hours: pd.Series, window: str,
                        min_periods: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Rolling regression of ``resid`` on time and duty: the time coefficient (per hour) over
    the window's mean duty part — a leak's or a bearing's ramp, with a load change absorbed
    by the duty term (the pump's own gain over a few minutes) instead of read as a trend —
    and its t statistic (the coefficient over its standard error: a ramp the noise cannot
    make, where a transient the regression does not fit has a large error)."""
    def roll(y):
        return y.rolling(window, min_periods=min_periods)

    var_t, var_b = roll(hours).var(), roll(duty).var()
    c_tb, c_rt, c_rb = roll(hours).cov(duty), roll(resid).cov(hours), roll(resid).cov(duty)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_b = roll(duty).mean().abs()
        # with a constant duty the regression on time alone is the answer
        varied = np.sqrt(var_b) > 0.01 * mean_b.where(mean_b > floor, floor)
        det = (var_t * var_b - c_tb * c_tb).where(varied)
        coef = ((var_b * c_rt - c_tb * c_rb) / det.where(det > 0)).where(
            varied, c_rt / var_t.where(var_t > 0))
        out = (coef / mean_b.where(mean_b > floor, floor)).to_numpy()
        # standard error of the time coefficient (with or without the duty term)
        n = roll(resid).count()
        var_r = roll(resid).var()
        coef_b = ((var_t * c_rb - c_tb * c_rt) / det.where(det > 0)).where(varied, 0.0)
        res_var = (var_r - coef * c_rt - coef_b * c_rb).clip(lower=0.0)
        share = (1.0 - c_tb * c_tb / (var_t * var_b)).where(varied, 1.0).clip(lower=1e-6)
        se = np.sqrt(res_var / (n * var_t * share))
        t = (coef / se.where(se > 0)).clip(-1e3, 1e3).to_numpy()
    return (np.where(np.isfinite(out), out, np.nan), np.where(np.isfinite(t), t, np.nan))


def _run_s(side: np.ndarray, ms: np.ndarray, cap_s: float) -> np.ndarray:
    """Signed seconds each reading's ``side`` (−1, 0, +1) has held, capped (0 while 0)."""
    changed = np.ones(len(side), dtype=bool)
    if len(side) > 1:
        changed[1:] = side[1:] != side[:-1]
    start = np.maximum.accumulate(np.where(changed, np.arange(len(side)), 0))
    return side * np.minimum((ms - ms[start]) / 1000.0, float(cap_s))


def _flat_run_s(x: np.ndarray, ms: np.ndarray, cap_s: float) -> np.ndarray:
    """Seconds since each reading's value last changed (NaN readings break a run), capped."""
    changed = np.ones(len(x), dtype=bool)
    if len(x) > 1:
        changed[1:] = ~(x[1:] == x[:-1])
    start = np.maximum.accumulate(np.where(changed, np.arange(len(x)), 0))
    return np.minimum((ms - ms[start]) / 1000.0, float(cap_s))


def _slope(x: pd.Series, hours: pd.Series, var_t: pd.Series, window: str) -> np.ndarray:
    """Rolling least-squares slope of ``x`` against time (per hour); NaN until two points."""
    cov = x.rolling(window, min_periods=2).cov(hours)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (cov / var_t.where(var_t > 0)).to_numpy()
    return slope
