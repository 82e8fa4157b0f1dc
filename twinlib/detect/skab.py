"""The SKAB pump benchmark under its published protocol, and our detectors on it.

SKAB (Skoltech Anomaly Benchmark, github waico/SKAB, GPL-3.0 — read it from where the user keeps
it, never copy it into this repository) records a water-circulation test bed with a pump at 1 Hz.
Protocol, as in SKAB's own notebooks: each labelled file on its own; its first 400 rows are
training data (the detector is fitted on them), the rest is test data; the test predictions of
all files are pooled into one confusion matrix and scored with F1 = TP / (TP + (FP + FN)/2),
FAR = FP / (FP + TN) and MAR = FN / (FN + TP). Changepoints — taken as the rows where a method's
binary output switches — are scored with the NAB score in a 60 s window to the right of each
true changepoint (profiles standard, low-FP, low-FN).

The configuration we stand behind (:data:`CHOSEN`) was chosen once on the development subset
(``valve1``) and is applied unchanged to whatever files are scored: the twin-residual detector on
inputs smoothed by a causal EWMA (``alpha`` 0.2), each sensor modelled from the other seven,
threshold 2.5 × the largest score seen in the training rows. Because it was picked on the same
files it is reported on, its figures on ``valve1`` are optimistic; the full benchmark (valve2,
other) is the honest test. On valve1 it gives F1 0.80, FAR 13.1 %, MAR 25.4 %; the factor is
the sensitive knob (2.0 → 0.82 / 18.6 % / 18.8 %, 3.0 → 0.73 / 9.1 % / 37.9 %), and a two-fold
split of the valve1 files, choosing the factor by F1 on one half, picks 2.0 both times — so a
threshold chosen blind would beat Conv-AE on F1 and MAR but not on FAR. The pooled FAR is
dominated by a few files whose normal state after the training rows drifts.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twinlib.twin import ewm_causal

from .detectors import PCAT2Q, Detector, IsolationForestDetector, RollingZScore, TwinResidualDetector
from .scoring import outlier_metrics

__all__ = ["SkabMethod", "skab_methods", "CHOSEN", "LEADERBOARD", "NAB_LEADERBOARD", "NAB_PROFILES",
           "TRAIN_ROWS", "find_skab_files", "read_skab", "nab_score", "run_skab", "format_skab",
           "skab_json"]

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


@dataclass(frozen=True)
class SkabMethod:
    """A detector recipe for SKAB: how to build it, and the causal input smoothing (EWMA alpha)."""

    name: str
    make: Callable[[], Detector]
    input_smooth: float | None = None
    description: str = ""


def skab_methods(seed: int = 0) -> dict[str, SkabMethod]:
    """Our methods on SKAB: the chosen one first, then the plain baselines for comparison."""
    return {m.name: m for m in (
        SkabMethod("twin-residual (chosen)",
                   lambda: TwinResidualDetector(residual_smooth=None, q=1.0, factor=2.5, seed=seed),
                   0.2, "twin residuals on EWMA(0.2) inputs, threshold 2.5 × training max"),
        SkabMethod("PCA T²+Q smoothed",
                   lambda: PCAT2Q(n_components=3, q=1.0, factor=3.0), 0.2,
                   "3 components on EWMA(0.2) inputs, threshold 3 × training max"),
        SkabMethod("PCA T²+Q plain",
                   lambda: PCAT2Q(n_components=0.9, q=0.99, factor=1.0), None,
                   "90 % variance, threshold = training 99th percentile"),
        SkabMethod("rolling z-score",
                   lambda: RollingZScore(window=60, q=0.99, factor=1.0), None,
                   "window 60, threshold = training 99th percentile"),
        SkabMethod("isolation forest",
                   lambda: IsolationForestDetector(seed=seed, q=0.99, factor=1.0), None,
                   "100 trees, threshold = training 99th percentile"),
    )}


#: The configuration reported in the JSON line (chosen once, see the module docstring).
CHOSEN = "twin-residual (chosen)"


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


def _edges(pred: np.ndarray) -> np.ndarray:
    p = np.asarray(pred, dtype=np.int8)
    return np.flatnonzero(np.diff(p) != 0) + 1


def run_skab(data_dir: str | Path, methods: Mapping[str, SkabMethod] | None = None,
             train_rows: int = TRAIN_ROWS, window_s: float = 60.0) -> dict:
    """Score every method on every labelled SKAB file under ``data_dir`` (the published protocol).

    Returns ``{"files": [...], "notes": [...], "methods": {name: {tp, fp, fn, tn, f1, far, mar,
    precision, recall, nab: {profile: score}}}}`` with fractions between 0 and 1.
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
    results = {}
    for name, m in methods.items():
        counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
        nab = {k: [0.0, 0.0, 0.0] for k in NAB_PROFILES}
        for p, df in frames:
            cols = [c for c in df.columns if c not in ("datetime", *_LABELS)]
            X = df[cols].astype(float)
            if m.input_smooth is not None:
                X = X.apply(lambda c: pd.Series(ewm_causal(c.to_numpy(float), m.input_smooth),
                                                index=c.index))
            det = m.make().fit(X.iloc[:train_rows])
            pred = det.predict(X).astype(bool)[train_rows:]
            truth = df["anomaly"].to_numpy(dtype=bool)[train_rows:]
            c = outlier_metrics(pred, truth)
            for k in counts:
                counts[k] += c[k]
            if "changepoint" in df.columns:
                secs = df["datetime"].to_numpy(dtype="datetime64[ms]").astype(np.int64)[train_rows:] / 1000
                true_cp = secs[df["changepoint"].to_numpy(dtype=bool)[train_rows:]]
                pred_cp = secs[_edges(pred)]
                for k, prof in NAB_PROFILES.items():
                    s, n, b = nab_score(true_cp, pred_cp, window_s, prof)
                    nab[k][0] += s
                    nab[k][1] += n
                    nab[k][2] += b
        r = outlier_metrics(counts=counts)
        r["nab"] = {k: (100.0 * (s - n) / (b - n) if b != n else float("nan"))
                    for k, (s, n, b) in nab.items()}
        r["description"] = m.description
        results[name] = r
    return {"files": [str(p) for p, _ in frames], "notes": notes, "methods": results}


def format_skab(result: dict) -> str:
    """Our methods and the published leaderboard in one table (F1, FAR %, MAR %, NAB)."""
    lines = [f"SKAB: {len(result['files'])} labelled files, first {TRAIN_ROWS} rows of each train, "
             "pooled confusion matrix",
             f"{'method':<28} {'F1':>6} {'FAR %':>7} {'MAR %':>7} {'NAB std':>8} {'NAB lowFP':>9} "
             f"{'NAB lowFN':>9}"]
    for name, r in result["methods"].items():
        nab = r["nab"]
        lines.append(f"{name:<28} {r['f1']:>6.3f} {100 * r['far']:>7.2f} {100 * r['mar']:>7.2f} "
                     f"{nab['standard']:>8.2f} {nab['low_fp']:>9.2f} {nab['low_fn']:>9.2f}")
    lines.append("published (full SKAB, 34 files):")
    for name, (f1, far, mar) in LEADERBOARD.items():
        nab = NAB_LEADERBOARD.get(name, NAB_LEADERBOARD.get(name.replace(" (PCA)", "")))
        nab_s = f"{nab:>8.2f}" if nab is not None else f"{'':>8}"
        lines.append(f"  {name:<26} {f1:>6.2f} {far:>7.2f} {mar:>7.2f} {nab_s}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def skab_json(result: dict, method: str = CHOSEN) -> str:
    """The one-line JSON summary of the configuration we stand behind."""
    r = result["methods"][method]
    return json.dumps({"method": method, "f1": round(r["f1"], 4), "far": round(r["far"], 4),
                       "mar": round(r["mar"], 4), "nab_standard": round(r["nab"]["standard"], 2),
                       "files": len(result["files"])})
