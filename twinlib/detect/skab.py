"""The SKAB pump benchmark under its published protocol, with cross-validation built in.

SKAB (Skoltech Anomaly Benchmark, github waico/SKAB, GPL-3.0 — read it from where the user keeps
it, never copy it into this repository) records a water-circulation test bed with a pump at 1 Hz,
eight signals. Protocol, as in SKAB's own notebooks: each labelled file on its own; its first
400 rows are training data (the detector is fitted on them), the rest is test data; the test
predictions of all files are pooled into one confusion matrix and scored with
F1 = TP / (TP + (FP + FN)/2), FAR = FP / (FP + TN) and MAR = FN / (FN + TP). Changepoints — the
rows where a method's binary output switches, plus the first test row when it is flagged — are
scored with SKAB's own NAB scorer (:func:`nab_score_skab`, a re-implementation of
``tsad``'s ``chp_score(metric="nab", window_width="60s", anomaly_window_destination="righter")``).

Evaluation discipline: a method's tunable constants — the threshold ``factor`` and its
``options`` (for the state estimators: score persistence and how fast the high-pass forgets the
slow signals' levels) — can be chosen by cross-validation over the files (``folds="loo"``:
leave one file out; an integer k: k groups of files): for each held-out group the combination
with the best pooled F1 on the *other* files is applied to it, and the held-out predictions are
pooled — the cross-validated figure, printed beside the in-sample one (the method's default
constants) together with the F1/FAR/MAR at each factor and each option value, so a choice on a
plateau can be told from one on an edge.

The method we stand behind (:data:`CHOSEN`, ``mset``) has no tuned threshold: the alarm is the
EWMA (persist 0.1) of the largest standardized residual against the largest score the model
gives to training rows it did not see (out-of-fold, factor 1.0); the slowly wandering signals
are high-passed (:data:`SKAB_SLOW` × 0.5: a drift is not a fault) and all eight signals are used.
Cross-validated on valve1 (16 files, leave-one-file-out) — the only SKAB files we develop on —
see the README for the figures; never compare a valve1 figure with a full-benchmark one.
"""
from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twinlib.twin import ewm_causal

from .detectors import (
    PCAT2Q,
    Detector,
    EnsembleDetector,
    IsolationForestDetector,
    LearnedTwinDetector,
    MSETDetector,
    RollingZScore,
    TwinResidualDetector,
)
from .scoring import outlier_metrics

__all__ = ["SkabMethod", "skab_methods", "CHOSEN", "LEADERBOARD", "NAB_LEADERBOARD", "NAB_PROFILES",
           "TRAIN_ROWS", "FACTOR_GRID", "PERSIST_GRID", "SLOW_SCALE_GRID",
           "STATE_DEFAULTS", "SKAB_SLOW", "find_skab_files", "read_skab", "nab_score",
           "nab_score_skab", "run_skab", "format_skab", "skab_json", "make_folds",
           "normal_far"]

TRAIN_ROWS = 400
#: Published outlier-detection results: (F1, FAR %, MAR %).
LEADERBOARD: dict[str, tuple[float, float, float]] = {
    "Conv-AE": (0.78, 13.55, 28.02),
    "MSET": (0.78, 39.73, 14.13),
    "T-squared+Q (PCA)": (0.76, 26.62, 24.92),
    "LSTM-AE": (0.74, 29.96, 25.92),
    "T-squared": (0.66, 19.21, 42.6),
    "Isolation forest": (0.29, 2.56, 82.89),
}
#: Published changepoint NAB scores (standard profile).
NAB_LEADERBOARD: dict[str, float] = {"MSCRED": 32.42, "Isolation forest": 26.16,
                                     "T-squared+Q": 25.35, "Conv-AE": 23.61}
#: NAB application profiles: (A_tp, A_fp, A_fn).
NAB_PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, 0.11, 1.0), "low_fp": (1.0, 0.22, 1.0), "low_fn": (1.0, 0.11, 2.0)}
_LABELS = ("anomaly", "changepoint")


#: Threshold factors tried by cross-validation and shown in the sensitivity table.
FACTOR_GRID: tuple[float, ...] = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
#: Score persistence (EWMA weight of the newest score; 1.0 = none) tried by cross-validation.
#: A fault persists, noise does not: the EWMA of the score must stay above the largest single
#: out-of-fold training score, so a lone noisy reading cannot alarm.
PERSIST_GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 1.0)
#: SKAB's slowly wandering signals → high-pass time constant (readings = seconds): the thermal
#: signals drift for the whole experiment (30 s keeps only their fast changes); the vibration RMS
#: levels wander over minutes in normal operation (SKAB's anomaly-free recording) while a fault
#: changes them within a minute or two (120 s keeps a step visible for minutes).
#: Chosen on valve1 and the anomaly-free recording (see the README), not on other SKAB files.
SKAB_SLOW: dict[str, float] = {"Temperature": 30.0, "Thermocouple": 30.0,
                               "Accelerometer1RMS": 120.0, "Accelerometer2RMS": 120.0}


#: How much faster or slower than :data:`SKAB_SLOW` the high-pass forgets levels, tried by CV.
SLOW_SCALE_GRID: tuple[float, ...] = (0.5, 1.0, 2.0)
#: The state estimators' options as configured (the in-sample figure).
STATE_DEFAULTS: dict[str, float] = {"persist": 0.1, "slow_scale": 0.5}


def _scaled(k: float) -> dict[str, float]:
    """:data:`SKAB_SLOW` with every time constant times ``k``."""
    return {c: tau * float(k) for c, tau in SKAB_SLOW.items()}


@dataclass(frozen=True)
class SkabMethod:
    """A detector recipe for SKAB: how to build it (``make(factor, **options)``), its default
    threshold factor, and an optional causal input smoothing (EWMA alpha) applied before the
    detector.

    ``options`` maps the recipe's other constants (e.g. ``"persist"``) to the values
    cross-validation may choose from — together with the factor, on the training folds only —
    and ``defaults`` gives the value of each used as configured (the in-sample figure).
    """

    name: str
    make: Callable[..., Detector]
    factor: float
    input_smooth: float | None = None
    description: str = ""
    grid: tuple[float, ...] = FACTOR_GRID
    options: Mapping[str, tuple] = field(default_factory=dict)
    defaults: Mapping[str, object] = field(default_factory=dict)

    def variants(self, every: bool = True) -> list[dict]:
        """The option values to fit, the defaults first: every combination (what
        cross-validation chooses from), or (``every=False``) one option at a time with the
        others at their defaults (enough for the sensitivity table)."""
        names = list(self.options)
        first = {n: self.defaults[n] for n in names}
        if every:
            combos = [dict(zip(names, vals)) for vals in
                      itertools.product(*(self.options[n] for n in names))]
        else:
            combos = [{**first, n: v} for n in names for v in self.options[n]]
        out = [first]
        for c in combos:
            if c not in out:
                out.append(c)
        return out

    def build(self, factor: float, values: Mapping | None = None) -> Detector:
        return self.make(factor, **dict(values if values is not None else self.defaults))


def skab_methods(seed: int = 0) -> dict[str, SkabMethod]:
    """Our methods on SKAB, by short name (``twin skab --detector NAME``); the chosen one first."""
    options = {"persist": PERSIST_GRID, "slow_scale": SLOW_SCALE_GRID}
    defaults = dict(STATE_DEFAULTS)
    return {m.name: m for m in (
        SkabMethod("mset", lambda f, persist, slow_scale: MSETDetector(
            slow_columns=_scaled(slow_scale), persist=persist, factor=f), 1.0, None,
            "MSET state estimate, 8 signals (thermal and vibration levels high-passed), "
            "score = EWMA(persist) of the largest residual, threshold = max out-of-fold "
            "training score (unsmoothed)", options=options, defaults=defaults),
        SkabMethod("ltwin", lambda f, persist, slow_scale: LearnedTwinDetector(
            slow_columns=_scaled(slow_scale), persist=persist, factor=f), 1.0, None,
            "learned twin (each signal from the other 7), same conditioning, persistence "
            "and threshold", options=options, defaults=defaults),
        SkabMethod("ensemble", lambda f, persist, slow_scale: EnsembleDetector(
            members=("mset", "ltwin"),
            member_params={m: {"slow_columns": _scaled(slow_scale), "persist": persist}
                           for m in ("mset", "ltwin")}, factor=f), 1.0, None,
            "mean of mset and ltwin, each in units of its own threshold",
            options=options, defaults=defaults),
        SkabMethod("twin-residual",
                   lambda f: TwinResidualDetector(residual_smooth=None, q=1.0, factor=f, seed=seed),
                   2.5, 0.2, "previous choice: twin residuals on EWMA(0.2) inputs, 2.5 × training "
                   "max (in-sample)", (1.5, 2.0, 2.5, 3.0, 3.5)),
        SkabMethod("pca-smoothed", lambda f: PCAT2Q(n_components=3, q=1.0, factor=f), 3.0, 0.2,
                   "PCA T²+Q, 3 components on EWMA(0.2) inputs, 3 × training max",
                   (2.0, 2.5, 3.0, 3.5, 4.0)),
        SkabMethod("pca", lambda f: PCAT2Q(n_components=0.9, q=0.99, factor=f), 1.0, None,
                   "PCA T²+Q, 90 % variance, training 99th percentile"),
        SkabMethod("zscore", lambda f: RollingZScore(window=60, q=0.99, factor=f), 1.0, None,
                   "rolling z-score, window 60, training 99th percentile"),
        SkabMethod("iforest", lambda f: IsolationForestDetector(seed=seed, q=0.99, factor=f), 1.0,
                   None, "isolation forest, 100 trees, training 99th percentile"),
    )}


#: The method reported in the JSON line when no ``--detector`` is given.
CHOSEN = "mset"


def _natural(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


def find_skab_files(data_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Labelled SKAB CSV files under ``data_dir`` (recursive), and notes on files left out."""
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such directory")
    paths = [root] if root.is_file() else sorted(root.rglob("*.csv"), key=_natural)
    files, notes = [], []
    for p in paths:
        try:
            header = p.open(encoding="utf-8", errors="replace").readline()
        except OSError as exc:
            notes.append(f"{p}: unreadable ({exc})")
            continue
        cols = [c.strip() for c in header.strip().split(";")]
        if "anomaly" in cols and "datetime" in cols:
            files.append(p)
        else:
            notes.append(f"{p}: no 'anomaly' label column, not scored")
    return files, notes


def read_skab(path: str | Path) -> pd.DataFrame:
    """One SKAB file: ``;``-separated, ``datetime`` parsed, labels as int, sensors as float."""
    df = pd.read_csv(path, sep=";")
    for col in ("datetime", "anomaly"):
        if col not in df.columns:
            raise ValueError(f"{path}: not a labelled SKAB file (no {col!r} column)")
    df["datetime"] = pd.to_datetime(df["datetime"], errors="coerce", format="ISO8601")
    if df["datetime"].isna().any():
        bad = int(df["datetime"].isna().idxmax()) + 2
        raise ValueError(f"{path}: line {bad}: unparseable datetime")
    for col in df.columns:
        if col == "datetime":
            continue
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if df["anomaly"].isna().any():
        raise ValueError(f"{path}: missing anomaly labels")
    df["anomaly"] = df["anomaly"].astype(int)
    if "changepoint" in df.columns:
        df["changepoint"] = df["changepoint"].fillna(0).astype(int)
    return df


def _sigma(y: float) -> float:
    """NAB's scaled sigmoid: ≈ +1 at the start of a window, 0 at its end, towards −1 after."""
    return 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0


def nab_score(true_cp_s, pred_cp_s, window_s: float = 60.0,
              profile: tuple[float, float, float] = NAB_PROFILES["standard"]) -> tuple[float, float, float]:
    """NAB raw score of predicted changepoints (seconds) against true ones, for one file.

    Each true changepoint opens a window ``[cp, cp + window_s]``. The first detection in a window
    earns ``A_tp · σ(y)`` (``y`` from −1 at the window start to 0 at its end); a detection outside
    every window costs ``A_fp · σ(y)`` with ``y`` its distance after the previous window (in
    window lengths; −A_fp when there is none); a window without detection costs ``A_fn``.
    Returns ``(score, null score, perfect score)``; normalise the pooled sums with
    ``100 · (S − null) / (perfect − null)``.
    """
    a_tp, a_fp, a_fn = profile
    windows = sorted((float(c), float(c) + window_s) for c in true_cp_s)
    hit = [False] * len(windows)
    score = 0.0
    for t in sorted(float(x) for x in pred_cp_s):
        inside = [i for i, (a, b) in enumerate(windows) if a <= t <= b]
        if inside:
            i = inside[0]
            if not hit[i]:
                hit[i] = True
                score += a_tp * _sigma((t - windows[i][1]) / window_s)
            continue
        before = [b for a, b in windows if b < t]
        score += a_fp * _sigma((t - before[-1]) / window_s) if before else -a_fp
    score -= a_fn * hit.count(False)
    null = -a_fn * len(windows)
    perfect = a_tp * _sigma(-1.0) * len(windows)
    return score, null, perfect


def _step(y: float, a_tp: float, a_fp: float) -> float:
    """tsad's "improved" NAB scale: A_tp at the window's start, falling (tanh) to A_fp at its end."""
    det = 1000
    x = np.linspace(-np.pi / 2, np.pi / 2, det)
    event = min(int(y * det), det - 1)
    return float((a_tp - a_fp) / 2 * -np.tanh(x[event]) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2
                 + a_fp)


def nab_score_skab(true_cp_s, pred_cp_s, window_s: float = 60.0,
                   profile: tuple[float, float, float] = NAB_PROFILES["standard"]
                   ) -> tuple[float, float, float]:
    """SKAB's own NAB score of one file: ``(score, null, perfect)``, pooled like :func:`nab_score`.

    As in SKAB's scorer (``tsad``'s ``chp_score`` with ``window_width="60s"``,
    ``anomaly_window_destination="righter"``): each true changepoint opens ``[cp, cp + window]``
    (a window overlapping the previous one starts where that one ends); the *first* detection
    inside a window earns ``A_tp`` at the window's start falling to ``−A_fp`` at its end (a
    tanh curve sampled at 1,000 points); later detections in the same window count nothing;
    every detection outside all windows costs ``A_fp`` (flat, unlike Numenta's sigmoid); a
    window without detection costs ``A_fn``. Null = ``−A_fn`` per window, perfect = ``A_tp``
    per window.
    """
    a_tp, a_fp, a_fn = profile
    a_fp, a_fn = -a_fp, -a_fn       # tsad's table holds them negative
    wins = [[float(c), float(c) + window_s] for c in sorted(true_cp_s)]
    for i in range(len(wins) - 1):  # "cut right window"
        if wins[i][1] >= wins[i + 1][0]:
            wins[i + 1][0] = wins[i][1]
    preds = np.sort(np.asarray(list(pred_cp_s), dtype=float))
    score = 0.0
    if not wins:
        return a_fp * preds.size, 0.0, 0.0
    outside = np.ones(preds.size, dtype=bool)
    for lo, hi in wins:
        inside = (preds >= lo) & (preds <= hi)
        outside &= ~inside
        if inside.any():
            first = preds[inside][0]
            score += _step((first - lo) / (hi - lo) if hi > lo else 0.0, a_tp, a_fp)
        else:
            score += a_fn
    score += a_fp * int(outside.sum())
    return score, a_fn * len(wins), a_tp * len(wins)


def _edges(pred: np.ndarray) -> np.ndarray:
    """Predicted changepoints as SKAB's notebooks take them: |diff|, the first row as it is."""
    p = np.asarray(pred, dtype=np.int8)
    out = list(np.flatnonzero(np.diff(p) != 0) + 1)
    return np.array(([0] if p.size and p[0] else []) + out, dtype=int)


def make_folds(n_files: int, folds: str | int) -> list[np.ndarray]:
    """File indices held out per fold: ``"loo"`` one file each, k: k groups (round robin)."""
    if folds in ("loo", "leave-one-out"):
        k = n_files
    else:
        try:
            k = int(folds)
        except (TypeError, ValueError):
            raise ValueError(f"folds must be 'loo' or an integer, got {folds!r}") from None
    if k < 2 or k > n_files:
        raise ValueError(f"cross-validation needs 2 ≤ folds ≤ files ({n_files}), got {folds!r}")
    idx = np.arange(n_files)
    return [idx[i::k] for i in range(k)]


def _metrics(C: np.ndarray) -> dict:
    return outlier_metrics(counts=dict(zip(("tp", "fp", "fn", "tn"), (int(v) for v in C))))


def _nab(frames_cp, preds) -> dict:
    out = {}
    for k, prof in NAB_PROFILES.items():
        tot = np.zeros(3)
        for (secs, true_cp), pred in zip(frames_cp, preds):
            if true_cp is None:
                continue
            tot += nab_score_skab(true_cp, secs[_edges(pred)], 60.0, prof)
        s, n, b = tot
        out[k] = 100.0 * (s - n) / (b - n) if b != n else float("nan")
    return out


def run_skab(data_dir: str | Path, methods: Mapping[str, SkabMethod] | None = None,
             train_rows: int = TRAIN_ROWS, folds: str | int | None = None,
             criterion: str = "f1") -> dict:
    """Score methods on every labelled SKAB file under ``data_dir`` (the published protocol).

    Every method is fitted once per file; its scores are thresholded at each factor of its grid.
    Returns ``{"files", "notes", "folds", "methods": {name: {tp, fp, fn, tn, f1, far, mar,
    precision, recall, nab: {profile: score}, factor, description, sensitivity: [{factor, f1,
    far, mar}], cv: {f1, far, mar, …, picks: [factor per fold]} (with ``folds``)}}}``; fractions
    between 0 and 1. ``criterion`` (``f1``) is what the training folds maximise.
    """
    methods = dict(methods) if methods is not None else skab_methods()
    files, notes = find_skab_files(data_dir)
    frames = []
    for p in files:
        df = read_skab(p)
        if len(df) <= train_rows:
            notes.append(f"{p}: {len(df)} rows, not more than the {train_rows} training rows; skipped")
            continue
        frames.append((p, df))
    if not frames:
        raise ValueError(f"{data_dir}: no labelled SKAB files with more than {train_rows} rows")
    if criterion != "f1":
        raise ValueError(f"criterion must be 'f1', got {criterion!r}")
    fold_sets = make_folds(len(frames), folds) if folds is not None else None
    truths, cps = [], []
    for _, df in frames:
        truths.append(df["anomaly"].to_numpy(dtype=bool)[train_rows:])
        if "changepoint" in df.columns:
            secs = df["datetime"].to_numpy(dtype="datetime64[ms]").astype(np.int64)[train_rows:] / 1000
            cps.append((secs, secs[df["changepoint"].to_numpy(dtype=bool)[train_rows:]]))
        else:
            cps.append((None, None))
    results = {}
    for name, m in methods.items():
        grid = sorted(set(m.grid) | {m.factor})
        variants = m.variants(every=fold_sets is not None)
        # scores[v][i]: test scores of file i under option value v; thr[v][i] its threshold
        scores, base_thr = [], []
        for value in variants:
            sv, tv = [], []
            for p, df in frames:
                cols = [c for c in df.columns if c not in ("datetime", *_LABELS)]
                X = df[cols].astype(float)
                if m.input_smooth is not None:
                    X = X.apply(lambda c: pd.Series(ewm_causal(c.to_numpy(float), m.input_smooth),
                                                    index=c.index))
                det = m.build(1.0, value).fit(X.iloc[:train_rows])
                sv.append(det.score(X)[train_rows:])
                tv.append(det.threshold_)
            scores.append(sv)
            base_thr.append(tv)
        # per file × (option value, factor) confusion counts; the default value first
        combos = [(v, j, f) for v in range(len(variants)) for j, f in enumerate(grid)]
        counts = np.zeros((len(frames), len(combos), 4), dtype=np.int64)
        for i, truth in enumerate(truths):
            for c, (v, _, f) in enumerate(combos):
                pr = scores[v][i] > base_thr[v][i] * f
                counts[i, c] = (np.count_nonzero(pr & truth), np.count_nonzero(pr & ~truth),
                                np.count_nonzero(~pr & truth), np.count_nonzero(~pr & ~truth))
        j0 = grid.index(m.factor)
        r = _metrics(counts[:, j0].sum(axis=0))
        r["factor"] = m.factor
        r["description"] = m.description
        r["nab"] = _nab(cps, [s > t * m.factor for s, t in zip(scores[0], base_thr[0])])
        r["sensitivity"] = [{"factor": f, **{k: v for k, v in _metrics(counts[:, j].sum(0)).items()
                                              if k in ("f1", "far", "mar")}}
                            for j, f in enumerate(grid)]
        if m.options:
            r["options"] = {"defaults": dict(m.defaults), "sensitivity": {}}
            for opt in m.options:   # one option at a time, the others at their defaults
                rows = []
                for v, values in enumerate(variants):
                    if any(values[o] != m.defaults[o] for o in m.options if o != opt):
                        continue
                    met = _metrics(counts[:, v * len(grid) + j0].sum(0))
                    rows.append({"value": values[opt],
                                 **{k: x for k, x in met.items() if k in ("f1", "far", "mar")}})
                r["options"]["sensitivity"][opt] = rows
        if fold_sets is not None:
            C = np.zeros(4, dtype=np.int64)
            picks, option_picks = [], []
            cv_pred = [None] * len(frames)
            for held in fold_sets:
                train_mask = np.ones(len(frames), dtype=bool)
                train_mask[held] = False
                f1s = [_metrics(counts[train_mask, c].sum(0))["f1"] for c in range(len(combos))]
                c = int(np.argmax(f1s))   # ties → the default option, then the smaller factor
                v, _, f = combos[c]
                picks.append(f)
                option_picks.append(variants[v])
                C += counts[held, c].sum(axis=0)
                for i in held:
                    cv_pred[i] = scores[v][i] > base_thr[v][i] * f
            cv = _metrics(C)
            cv["picks"] = picks
            if m.options:
                cv["option_picks"] = option_picks
            cv["nab"] = _nab(cps, cv_pred)
            r["cv"] = cv
        results[name] = r
    return {"files": [str(p) for p, _ in frames], "notes": notes, "folds": folds,
            "root": str(Path(data_dir)), "methods": results}


def _file_names(result: dict) -> str:
    root = Path(result.get("root", ""))
    names = []
    for f in result["files"]:
        try:
            names.append(str(Path(f).relative_to(root)))
        except ValueError:
            names.append(Path(f).name)
    return ", ".join(names)


def format_skab(result: dict) -> str:
    """Our methods (in-sample and cross-validated), the factor sensitivity, the leaderboard."""
    n = len(result["files"])
    folds = result.get("folds")
    lines = [f"SKAB: {n} labelled file{'s' if n != 1 else ''} under {result.get('root', '?')}: "
             f"{_file_names(result)}",
             f"first {TRAIN_ROWS} rows of each file train, the rest test, pooled confusion matrix"
             + ("; cross-validation over files: "
                + ('leave-one-file-out' if folds in ('loo', 'leave-one-out') else f'{folds} groups')
                if folds is not None else "; no cross-validation (add --folds loo)"),
             f"{'method':<15} {'factor':>6} {'F1':>6} {'FAR %':>7} {'MAR %':>7} | "
             f"{'CV F1':>6} {'FAR %':>7} {'MAR %':>7} | {'NAB std':>7} {'lowFP':>7} {'lowFN':>7}"]
    for name, r in result["methods"].items():
        cv = r.get("cv")
        cvs = (f"{cv['f1']:>6.3f} {100 * cv['far']:>7.2f} {100 * cv['mar']:>7.2f}" if cv
               else f"{'—':>6} {'—':>7} {'—':>7}")
        nab = r["nab"]
        lines.append(f"{name:<15} {r['factor']:>6g} {r['f1']:>6.3f} {100 * r['far']:>7.2f} "
                     f"{100 * r['mar']:>7.2f} | {cvs} | {nab['standard']:>7.2f} "
                     f"{nab['low_fp']:>7.2f} {nab['low_fn']:>7.2f}")
    lines.append("in-sample = each method's own default constants on these files; CV = the factor "
                 "(and option) chosen (best F1) on the other folds, scored on the held-out one")
    lines.append("sensitivity (F1 / FAR % / MAR % at each threshold factor; * = default, "
                 "CV picks in brackets):")
    for name, r in result["methods"].items():
        cells = []
        for s in r["sensitivity"]:
            mark = "*" if s["factor"] == r["factor"] else ""
            cells.append(f"{s['factor']:g}{mark}: {s['f1']:.3f}/{100 * s['far']:.1f}/{100 * s['mar']:.1f}")
        picks = ""
        if "cv" in r:
            vals, cnt = np.unique(r["cv"]["picks"], return_counts=True)
            picks = "  [" + ", ".join(f"{v:g}×{c}" for v, c in zip(vals, cnt)) + "]"
        lines.append(f"  {name:<13} " + "  ".join(cells) + picks)
        opts = r.get("options")
        for opt, rows in (opts["sensitivity"].items() if opts else ()):
            default = opts["defaults"][opt]
            cells = [f"{o['value']:g}{'*' if o['value'] == default else ''}: {o['f1']:.3f}/"
                     f"{100 * o['far']:.1f}/{100 * o['mar']:.1f}" for o in rows]
            picks = ""
            if "cv" in r and "option_picks" in r["cv"]:
                vals, cnt = np.unique([p[opt] for p in r["cv"]["option_picks"]],
                                      return_counts=True)
                picks = "  [" + ", ".join(f"{v:g}×{c}" for v, c in zip(vals, cnt)) + "]"
            lines.append(f"  {'':<13} {opt} at factor {r['factor']:g}: " + "  ".join(cells) + picks)
    lines.append("published leaderboard — full SKAB, 34 files; NOT comparable with a run on "
                 + ("these files" if n != 34 else "other settings") + ":")
    for name, (f1, far, mar) in LEADERBOARD.items():
        nab = NAB_LEADERBOARD.get(name, NAB_LEADERBOARD.get(name.replace(" (PCA)", "")))
        nab_s = f"{nab:>8.2f}" if nab is not None else f"{'':>8}"
        lines.append(f"  {name:<26} {f1:>6.2f} {far:>7.2f} {mar:>7.2f} {nab_s}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def skab_json(result: dict, method: str = CHOSEN) -> str:
    """The one-line JSON summary of one method: ``f1``/``far``/``mar`` (fractions) as applied
    (its default constants), or the cross-validated figures when the run had folds."""
    r = result["methods"][method]
    use = r.get("cv", r)
    out = {"method": method, "f1": round(use["f1"], 4), "far": round(use["far"], 4),
           "mar": round(use["mar"], 4), "nab_standard": round(use["nab"]["standard"], 2),
           "files": len(result["files"]), "folds": result.get("folds"),
           "in_sample": {k: round(r[k], 4) for k in ("f1", "far", "mar")}}
    if "cv" in r:
        out["cv_picks"] = r["cv"]["picks"]
        if "option_picks" in r["cv"]:
            out["cv_option_picks"] = r["cv"]["option_picks"]
    return json.dumps(out)


def normal_far(path: str | Path, methods: Mapping[str, SkabMethod] | None = None,
               rows: int = 1150, train_rows: int = TRAIN_ROWS) -> dict:
    """False-alarm rate on a recording of normal operation (SKAB's ``anomaly-free.csv``).

    The recording is cut into pieces of ``rows`` rows (the length of a labelled SKAB file); each
    piece is run under the protocol (first ``train_rows`` rows train) and every flagged test row
    is a false alarm. Normal operation the development files never showed: the closest thing to
    an honest FAR on unseen files that the data we have allows.
    """
    methods = dict(methods) if methods is not None else skab_methods()
    df = pd.read_csv(path, sep=";")
    cols = [c for c in df.columns if c not in ("datetime", *_LABELS)]
    X = df[cols].apply(pd.to_numeric, errors="coerce").astype(float)
    pieces = [X.iloc[i:i + rows].reset_index(drop=True) for i in range(0, len(X) - rows + 1, rows)]
    if not pieces:
        raise ValueError(f"{path}: fewer than {rows} rows")
    out = {}
    for name, m in methods.items():
        fp = tot = 0
        for P in pieces:
            if m.input_smooth is not None:
                P = P.apply(lambda c: pd.Series(ewm_causal(c.to_numpy(float), m.input_smooth)))
            pred = m.build(m.factor).fit(P.iloc[:train_rows]).predict(P)[train_rows:]
            fp += int(pred.sum())
            tot += len(pred)
        out[name] = {"far": fp / tot, "pieces": len(pieces), "rows": tot}
    return out
