"""How good is a detector (or the rules) on labelled data — the numbers operators care about.

* Row level: precision, recall, F1, FAR (false-alarm rate, FP / (FP + TN)) and MAR (missed-alarm
  rate, FN / (FN + TP)), a row being positive when its ``label`` is a fault kind.
* Alarm level: false alarms per asset-day (alarm episodes — runs of flagged rows — that touch no
  fault row, divided by the observed asset-days), because operators count alarms, not rows.
* Fault level: each fault episode (a run of one fault label on one asset) is detected when a row
  inside it is flagged; the detection delay is the time from its onset to that first flag. Per fault
  kind: episodes, detected, event recall, median delay, row recall.

:func:`compare_on_fleet` puts the alarm rules and every detector side by side on a simulated,
labelled fleet (``twin detect --evaluate`` prints it). Detectors are fitted per asset on the
healthy rows of each asset's first ``train_hours``; everything after that is the test period.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from twinlib.config import SENSORS

from .detectors import DETECTORS, Detector
from .rules import AssetRuleMachine, RuleBook, RuleSet

__all__ = ["confusion", "outlier_metrics", "runs", "alarm_lifecycle", "fault_truth", "evaluate_alarms",
           "score_by_asset", "rule_predictions", "threshold_predictions", "compare_on_fleet",
           "default_fleet_detectors", "format_comparison"]


def confusion(pred, truth) -> dict[str, int]:
    """TP, FP, FN, TN counts of two boolean arrays."""
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"pred and truth differ in shape: {p.shape} vs {t.shape}")
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(p.size - tp - fp - fn)}


def outlier_metrics(pred=None, truth=None, *, counts: Mapping | None = None) -> dict[str, float]:
    """Precision, recall, F1 = TP / (TP + (FP + FN) / 2), FAR and MAR (fractions, 0–1).

    Give either ``pred``/``truth`` arrays or ready ``counts`` (a pooled confusion matrix).
    """
    c = dict(counts) if counts is not None else confusion(pred, truth)
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]

    def div(a, b):
        return a / b if b else float("nan")

    return {**c, "precision": div(tp, tp + fp), "recall": div(tp, tp + fn),
            "f1": div(tp, tp + (fp + fn) / 2), "far": div(fp, fp + tn), "mar": div(fn, fn + tp)}


def runs(mask) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) positions of each run of True values."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    d = np.diff(np.r_[0, m, 0])
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def alarm_lifecycle(flags, hold: int = 3, clear: int = 30) -> np.ndarray:
    """Rows during which an alarm is active, from a detector's per-row flags (one asset, in order).

    The same lifecycle as the alarm rules: an alarm is raised when ``hold`` consecutive rows are
    flagged (active from the first of them) and cleared after ``clear`` consecutive unflagged
    rows (inactive from the first of those). Why: operators see alarms, not flagged rows; one
    flagged row is not an alarm, and a flag that flickers is one alarm, not ten.
    """
    f = np.asarray(flags, dtype=bool)
    out = np.zeros(f.size, dtype=bool)
    if hold < 1 or clear < 1:
        raise ValueError("hold and clear must be at least 1")
    active = False
    run_on = run_off = 0
    for i, v in enumerate(f):
        if v:
            run_on += 1
            run_off = 0
            if not active and run_on >= hold:
                active = True
                out[i - hold + 1:i + 1] = True
            elif active:
                out[i] = True
        else:
            run_on = 0
            if active:
                run_off += 1
                if run_off >= clear:
                    active = False
                    out[i - clear + 1:i + 1] = False
                else:
                    out[i] = True
    return out


def fault_truth(labels) -> np.ndarray:
    """True where a label names a fault (not missing, not ``healthy``)."""
    lab = pd.Series(labels, dtype=object)
    return (lab.notna() & (lab.astype(str) != "healthy") & (lab.astype(str) != "")).to_numpy()


def _times_ms(df: pd.DataFrame) -> np.ndarray:
    if "ts" in df.columns:
        return df["ts"].to_numpy(dtype=np.int64)
    if "timestamp" in df.columns:
        return pd.to_datetime(df["timestamp"]).to_numpy(dtype="datetime64[ms]").astype(np.int64)
    raise ValueError("the frame needs a 'ts' or 'timestamp' column")


def _asset_order(df: pd.DataFrame, t: np.ndarray) -> list[np.ndarray]:
    assets = df["asset_id"].to_numpy() if "asset_id" in df.columns else np.zeros(len(df))
    codes, _ = pd.factorize(assets)
    order = np.lexsort((t, codes))
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, cuts)


def _recovery(ta: np.ndarray, truth: np.ndarray, recovery_s: float) -> np.ndarray:
    """Healthy rows within ``recovery_s`` after a fault episode ended (one asset, time order)."""
    out = np.zeros(len(ta), dtype=bool)
    if recovery_s <= 0:
        return out
    _, ends = runs(truth)
    for e in ends:
        if e < len(ta):
            stop = np.searchsorted(ta, ta[e] + recovery_s * 1000, side="left")
            out[e:stop] = True
    return out & ~truth


def evaluate_alarms(df: pd.DataFrame, pred, recovery_s: float = 3600.0) -> dict:
    """Row, alarm and fault-level scores of boolean ``pred`` against ``df['label']``.

    Healthy rows within ``recovery_s`` after a fault episode ends are not scored (a pump that
    overheated stays warm for a while after the cause is gone — flagging it then is neither a
    hit nor a false alarm), and an alarm that starts there is not counted as false.
    """
    pred = np.asarray(pred, dtype=bool)
    if len(pred) != len(df):
        raise ValueError(f"pred has {len(pred)} values for {len(df)} rows")
    if "label" not in df.columns:
        raise ValueError("evaluate_alarms needs a 'label' column (the ground truth)")
    truth = fault_truth(df["label"])
    t = _times_ms(df)
    labels = df["label"].astype(object).to_numpy()
    ignore = np.zeros(len(df), dtype=bool)
    asset_days = 0.0
    false_alarms = 0
    alarms = 0
    events = []
    for idx in _asset_order(df, t):
        ta, pa, tr, la = t[idx], pred[idx], truth[idx], labels[idx]
        rec = _recovery(ta, tr, recovery_s)
        ignore[idx] = rec
        if len(ta) > 1:
            asset_days += (ta[-1] - ta[0]) / 86_400_000
        s, e = runs(pa)
        alarms += len(s)
        for a, b in zip(s, e):
            if not tr[a:b].any() and not rec[a]:
                false_alarms += 1
        # fault episodes: runs of one label
        change = np.r_[True, la[1:] != la[:-1]]
        starts = np.flatnonzero(change)
        ends = np.r_[starts[1:], len(la)]
        for a, b in zip(starts, ends):
            if not tr[a]:
                continue
            hit = np.flatnonzero(pa[a:b])
            delay = (ta[a + hit[0]] - ta[a]) / 1000 if hit.size else None
            events.append({"kind": str(la[a]), "onset": int(ta[a]), "rows": int(b - a),
                           "flagged": int(pa[a:b].sum()), "delay_s": delay})
    out = outlier_metrics(pred[~ignore], truth[~ignore])
    per_kind = {}
    for kind in sorted({e["kind"] for e in events}):
        ev = [e for e in events if e["kind"] == kind]
        delays = [e["delay_s"] for e in ev if e["delay_s"] is not None]
        per_kind[kind] = {
            "events": len(ev), "detected": len(delays),
            "event_recall": len(delays) / len(ev),
            "median_delay_s": float(np.median(delays)) if delays else None,
            "row_recall": sum(e["flagged"] for e in ev) / max(1, sum(e["rows"] for e in ev)),
        }
    delays = [e["delay_s"] for e in events if e["delay_s"] is not None]
    out.update({
        "asset_days": asset_days,
        "alarms": alarms,
        "false_alarms": false_alarms,
        "false_alarms_per_asset_day": false_alarms / asset_days if asset_days else float("nan"),
        "events": len(events),
        "events_detected": len(delays),
        "event_recall": len(delays) / len(events) if events else float("nan"),
        "median_delay_s": float(np.median(delays)) if delays else None,
        "per_kind": per_kind,
    })
    return out


def score_by_asset(detector: Detector, df: pd.DataFrame, train_mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Fit a clone of ``detector`` per asset on its ``train_mask`` rows; score every row.

    Returns ``(scores, predictions)`` aligned with ``df``. Each asset is its own time series, in
    time order, as the detector contract requires.
    """
    t = _times_ms(df)
    train = np.ones(len(df), dtype=bool) if train_mask is None else np.asarray(train_mask, bool)
    scores = np.zeros(len(df))
    flags = np.zeros(len(df), dtype=bool)
    for idx in _asset_order(df, t):
        part = df.iloc[idx]
        fit_rows = train[idx]
        if fit_rows.sum() < 10:
            raise ValueError(f"asset {part['asset_id'].iloc[0] if 'asset_id' in part else ''}: "
                             "fewer than 10 training rows")
        det = detector.clone()
        if det.fit_on_span:
            # the twin keeps its lag filters running over the whole series; label-based
            # exclusion happens inside (healthy_only), so fit on the contiguous training span
            last = np.flatnonzero(fit_rows)[-1]
            det.fit(part.iloc[: last + 1].assign(
                label=np.where(fit_rows[: last + 1], "healthy", "excluded")))
        else:
            det.fit(part[fit_rows])
        s = det.score(part)
        scores[idx] = s
        flags[idx] = s > det.threshold_
    return scores, flags


def rule_predictions(df: pd.DataFrame, rules=None, include=("high", "low", "flatline",
                                                            "impossible")) -> np.ndarray:
    """Rows during which a rule alarm is active, running the alarm engine's state machine.

    Stale alarms are left out (they describe missing rows, which a row score cannot show).
    """
    book = rules if isinstance(rules, RuleBook) else RuleBook(rules if isinstance(rules, Mapping) else {})
    t = _times_ms(df)
    vals = {s: df[s].to_numpy(dtype=float) for s in SENSORS if s in df.columns}
    out = np.zeros(len(df), dtype=bool)
    assets = df["asset_id"].to_numpy() if "asset_id" in df.columns else np.full(len(df), "asset")
    for idx in _asset_order(df, t):
        a = str(assets[idx[0]])
        rs = rules if isinstance(rules, RuleSet) else book.for_asset(a)
        m = AssetRuleMachine(a, rs)
        for i in idx:
            m.step(int(t[i]), {s: (None if math.isnan(v[i]) else float(v[i])) for s, v in vals.items()})
            out[i] = any(r.rsplit("_", 1)[-1] in include for r in m.active)
    return out


def threshold_predictions(df: pd.DataFrame, thresholds: Mapping[str, float] | None = None) -> np.ndarray:
    """The seed's check applied to every row: any sensor over its fixed threshold."""
    from twinlib.config import THRESHOLDS

    lim = dict(THRESHOLDS if thresholds is None else thresholds)
    out = np.zeros(len(df), dtype=bool)
    for s in SENSORS:
        if s in df.columns:
            out |= df[s].to_numpy(dtype=float) > lim[s]
    return out


def default_fleet_detectors(seed: int = 0, cadence_s: float = 60.0,
                            state_columns=None) -> dict[str, Detector]:
    """The detectors compared on the simulated fleet, with the settings we stand behind.

    One threshold policy: ``horizon`` = a week of readings at ``cadence_s`` — each threshold is
    the score the healthy training rows would exceed about once a week, extrapolated from their
    tail (:func:`~twinlib.detect.detectors.base.tail_threshold`), not one training maximum or
    quantile (those are crossed by chance several times in a week after a day of training).

    CUSUM, PCA and the isolation forest model no operating state of their own: they are given
    the kind's state signals (``state_columns``; default: the pump kind's load, speed, ambient)
    and score what the state does not explain (each measured signal minus its least-squares
    response to the state, through the twin's bank of lags converted to readings at
    ``cadence_s``; see :class:`~twinlib.detect.detectors._prep.StateConditioned`). Data without
    those columns is scored as before.
    """
    if not cadence_s > 0:
        raise ValueError(f"cadence_s must be positive, got {cadence_s!r}")
    from twinlib.kinds import builtin_kind

    from .detectors._prep import STATE_LAGS_S

    week = max(2.0, 7 * 86_400 / float(cadence_s))
    state = tuple(builtin_kind().state if state_columns is None else state_columns)
    lags = tuple(t / float(cadence_s) for t in STATE_LAGS_S)
    ctx = {"state_columns": state, "state_lags": lags}
    return {
        "zscore": DETECTORS["zscore"](window=60, horizon=week),
        "ewma": DETECTORS["ewma"](alpha=0.05, horizon=week),
        "cusum": DETECTORS["cusum"](k=1.0, horizon=week, **ctx),
        "pca": DETECTORS["pca"](n_components=0.9, horizon=week, smooth=0.05, **ctx),
        "iforest": DETECTORS["iforest"](seed=seed, horizon=week, smooth=0.05, **ctx),
        "twin": DETECTORS["twin"](seed=seed, residual_smooth=0.1, horizon=week, factor=3.0),
    }


def _cadence_s(df: pd.DataFrame, t: np.ndarray) -> float:
    """The median reading interval of a fleet frame (per asset), in seconds."""
    gaps = pd.Series(t).groupby(df["asset_id"].to_numpy()).diff().dropna()
    gaps = gaps[gaps > 0]
    return float(gaps.median()) / 1000.0 if len(gaps) else 1.0


def compare_on_fleet(df: pd.DataFrame, detectors: Mapping[str, Detector] | None = None, *,
                     train_hours: float = 6.0, rules=None, hold: int | None = 3,
                     clear: int = 30) -> pd.DataFrame:
    """Rules and detectors side by side on labelled fleet data (one row per method).

    Every method is scored on the rows after each asset's first ``train_hours``. Detector flags
    pass through :func:`alarm_lifecycle` (``hold``/``clear`` readings, the alarm rules' own
    defaults) per asset, so detectors and rules are counted as the alarms people would see;
    ``hold=None`` scores the raw flags.
    """
    if "label" not in df.columns:
        raise ValueError("compare_on_fleet needs labelled data (a 'label' column)")
    df = df.reset_index(drop=True)
    t = _times_ms(df)
    first = pd.Series(t).groupby(df["asset_id"].to_numpy()).transform("min").to_numpy()
    in_train = t < first + int(train_hours * 3_600_000)
    train_mask = in_train & ~fault_truth(df["label"])
    test = ~in_train
    if not test.any():
        raise ValueError(f"no rows after the first {train_hours} h of each asset to test on")
    preds = {"seed thresholds": threshold_predictions(df),
             "alarm rules": rule_predictions(df, rules)}
    order = _asset_order(df, t)
    if detectors is None:
        detectors = default_fleet_detectors(cadence_s=_cadence_s(df, t))
    for name, det in detectors.items():
        flags = score_by_asset(det, df, train_mask)[1]
        if hold is not None:
            for idx in order:
                flags[idx] = alarm_lifecycle(flags[idx], hold, clear)
        preds[name] = flags
    tdf = df[test].reset_index(drop=True)
    rows = []
    for name, p in preds.items():
        r = evaluate_alarms(tdf, p[test])
        row = {"method": name, "precision": r["precision"], "recall": r["recall"], "f1": r["f1"],
               "far": r["far"], "false_alarms_per_asset_day": r["false_alarms_per_asset_day"],
               "event_recall": r["event_recall"], "median_delay_s": r["median_delay_s"]}
        for kind, k in r["per_kind"].items():
            row[f"{kind}"] = f"{k['detected']}/{k['events']}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def format_comparison(table: pd.DataFrame) -> str:
    """A fixed-width text table of :func:`compare_on_fleet` for the terminal."""
    t = table.copy()
    for c in ("precision", "recall", "f1", "far", "event_recall"):
        if c in t:
            t[c] = t[c].map(lambda v: "—" if v != v else f"{v:.3f}")
    if "false_alarms_per_asset_day" in t:
        t["false_alarms_per_asset_day"] = t["false_alarms_per_asset_day"].map(lambda v: f"{v:.2f}")
        t = t.rename(columns={"false_alarms_per_asset_day": "FA/asset-day"})
    if "median_delay_s" in t:
        t["median_delay_s"] = t["median_delay_s"].map(lambda v: "—" if v is None or v != v else f"{v:.0f}")
        t = t.rename(columns={"median_delay_s": "delay_s"})
    return t.fillna("0/0").to_string()
