"""Report figures for the notebooks, drawn headless with matplotlib's Agg canvas.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no GUI, no
global state, nothing to ``show``); :func:`image` renders one to PNG, optionally saves it, and
returns an ``IPython.display.Image`` so the executed notebook carries the picture.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from twinlib.config import SENSORS, UNITS

__all__ = [
    "confusion_figure",
    "class_scores_figure",
    "importance_figure",
    "forecast_error_figure",
    "history_figure",
    "alarm_timeline_figure",
    "labels_figure",
    "reliability_figure",
    "random_table",
    "png",
    "image",
]

_TEAL = "#14b8a6"
_COLOURS = ("#0f766e", "#f59e0b", "#6366f1", "#ef4444", "#22c55e", "#64748b")


def _figure(width: float, height: float, ncols: int = 1):
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def confusion_figure(models: dict[str, dict]) -> Figure:
    """Confusion matrices (row-normalised, counts annotated), one panel per model."""
    fig, axes = _figure(5.2 * len(models), 4.6, len(models))
    for ax, (kind, scores) in zip(axes, models.items()):
        labels = scores["confusion"]["labels"]
        counts = np.asarray(scores["confusion"]["matrix"], dtype=float)
        rows = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        ax.imshow(share, cmap="Greens", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{kind}: macro-F1 {scores['macro_f1']:.3f} (held out)")
    return fig


def class_scores_figure(models: dict[str, dict]) -> Figure:
    """Per-class precision and recall of each model, side by side."""
    fig, axes = _figure(5.2 * len(models), 3.8, len(models))
    for ax, (kind, scores) in zip(axes, models.items()):
        classes = scores["classes_scored"]
        x = np.arange(len(classes))
        prec = [scores["per_class"][c]["precision"] for c in classes]
        rec = [scores["per_class"][c]["recall"] for c in classes]
        ax.bar(x - 0.2, prec, 0.4, label="precision", color=_COLOURS[0])
        ax.bar(x + 0.2, rec, 0.4, label="recall", color=_COLOURS[1])
        ax.set_xticks(x, classes, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{kind}: per-class scores")
        ax.legend(fontsize=8)
    return fig


def importance_figure(importances: dict[str, dict[str, float]], top: int = 12) -> Figure:
    """The ``top`` most important features of each model (importances sum to 1)."""
    fig, axes = _figure(5.2 * len(importances), 0.3 * top + 1.2, len(importances))
    for ax, (kind, imp) in zip(axes, importances.items()):
        items = list(imp.items())[:top][::-1]
        ax.barh([k for k, _ in items], [v for _, v in items], color=_TEAL)
        ax.set_title(f"{kind}: feature importance")
        ax.tick_params(axis="y", labelsize=8)
    return fig


def forecast_error_figure(forecast: dict) -> Figure:
    """Mean absolute error of the time-to-threshold forecast vs lead time, with forecast rate."""
    fig, axes = _figure(6.5, 3.8)
    ax = axes[0]
    rows = [r for r in forecast["per_lead"] if r["episodes"]]
    leads = [r["lead_h"] for r in rows]
    mae = [np.nan if r["mae_h"] is None else r["mae_h"] for r in rows]
    ax.plot(leads, mae, "o-", color=_TEAL, label="MAE (h)")
    ax.plot(leads, leads, ":", color="grey", label="error = lead time")
    ax.set_xlabel("lead time before the failure (h)")
    ax.set_ylabel("mean absolute error (h)")
    rate_ax = ax.twinx()
    rate_ax.bar(leads, [r["forecast_rate"] or 0 for r in rows], width=0.12, alpha=0.3,
                color=_COLOURS[1], label="forecast made")
    rate_ax.set_ylim(0, 1.05)
    rate_ax.set_ylabel("share of failures forecast")
    title = (f"{forecast['episodes_with_failure']} failures; false forecasts on healthy "
             f"stretches: {forecast['false_forecasts']}/{forecast['healthy_checks']}")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def history_figure(history: pd.DataFrame, thresholds: dict[str, float], title: str = "") -> Figure:
    """Downsampled min/mean/max per sensor (one panel each) with the alarm thresholds."""
    fig = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(SENSORS), 1, sharex=True)
    when = pd.to_datetime(history["bucket"], unit="ms") if len(history) else []
    for ax, sensor in zip(axes, SENSORS):
        if len(history):
            ax.fill_between(when, history[f"{sensor}_min"], history[f"{sensor}_max"],
                            color=_TEAL, alpha=0.25, linewidth=0)
            ax.plot(when, history[f"{sensor}_mean"], color=_COLOURS[0], linewidth=1)
        if sensor in thresholds:
            ax.axhline(thresholds[sensor], color=_COLOURS[3], linestyle="--", linewidth=1)
        ax.set_ylabel(f"{sensor} ({UNITS.get(sensor, '')})", fontsize=8)
    axes[0].set_title(title or "history (min/mean/max per bucket, dashed: alarm threshold)")
    return fig


def _to_time(ms) -> pd.Timestamp:
    return pd.Timestamp(int(ms), unit="ms")


def alarm_timeline_figure(alerts: list[dict], events: pd.DataFrame, start_ms: int,
                          end_ms: int) -> Figure:
    """Alarms (per rule) and ground-truth fault episodes of one asset on one time axis."""
    fig, axes = _figure(10, 2.8)
    ax = axes[0]
    lanes = []
    for e in events.to_dict("records"):
        lane = f"fault: {e['kind']}"
        if lane not in lanes:
            lanes.append(lane)
        y = lanes.index(lane)
        end = e["end"] if pd.notna(e["end"]) else _to_time(end_ms)
        ax.plot([e["onset"], end], [y, y], linewidth=8, color=_COLOURS[1], solid_capstyle="butt")
    for a in alerts:
        lane = f"alarm: {a.get('rule')}"
        if lane not in lanes:
            lanes.append(lane)
        y = lanes.index(lane)
        colour = _COLOURS[3] if a.get("severity") == "critical" else _COLOURS[0]
        end = a.get("ended_at") or a.get("last_seen") or end_ms
        ax.plot([_to_time(a["started_at"]), _to_time(end)], [y, y], linewidth=8, color=colour,
                solid_capstyle="butt")
    ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax.set_xlim(_to_time(start_ms), _to_time(end_ms))
    ax.set_ylim(-0.8, max(len(lanes), 1) - 0.2)
    if not lanes:
        ax.text(0.5, 0.5, "no alarms or fault episodes in this range", transform=ax.transAxes,
                ha="center", va="center")
    ax.set_title("alarm timeline (alarms from the alerts table; faults: simulator ground truth)")
    return fig


def labels_figure(label_counts: dict[str, int]) -> Figure:
    """Readings per label (log scale): how much of each fault the history holds."""
    fig, axes = _figure(7, 3.2)
    ax = axes[0]
    names = list(label_counts)
    ax.bar(names, [label_counts[n] for n in names], color=_TEAL)
    ax.set_yscale("log")
    ax.set_ylabel("readings")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax.set_title("readings per label")
    return fig


def reliability_figure(random: dict) -> Figure:
    """Reliability curves: the top class's probability against how often it was right."""
    fig, (ax,) = _figure(5.0, 4.0)
    ax.plot([0, 1], [0, 1], color="#94a3b8", linestyle="--", linewidth=1, label="perfect")
    for i, (kind, r) in enumerate((random.get("models") or {}).items()):
        bins = (r.get("reliability") or {}).get("bins", [])
        if bins:
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                    color=_COLOURS[i % len(_COLOURS)],
                    label=f"{kind} (ECE {r['reliability']['ece']:.3f})")
    ax.set_xlabel("predicted probability of the top class")
    ax.set_ylabel("share correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Reliability on random-schedule fleets")
    return fig


def random_table(random: dict) -> pd.DataFrame:
    """Models and the simple rules side by side on the random-schedule fleets."""
    rows = {}
    for name, r in [*(random.get("models") or {}).items(), ("rules", random.get("rules"))]:
        if not r:
            continue
        f1, alarms = r["macro_f1"], r["alarms"]
        row = {"macro-F1 mean": f1["mean"], "± sd": f1["std"], "worst seed": f1["worst"],
               "min class recall": r["min_class_recall"],
               "false alarms / pump-day": alarms["false_alarms_per_pump_day"],
               "episodes detected": alarms["detection_rate"]}
        for kind, k in alarms["by_kind"].items():
            row[f"lead min {kind}"] = k["median_lead_min"]
        rows[name] = row
    return pd.DataFrame(rows).T


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def image(fig: Figure, path: str | os.PathLike | None = None):
    """An ``IPython.display.Image`` of ``fig`` (also written to ``path`` when given)."""
    from IPython.display import Image

    data = png(fig)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return Image(data=data, format="png")
