"""The classes fault models name, and which rows are fit to learn from or be scored on.

Classes are what an engineer acts on: the four progressive faults and the three sensor faults
that leave readings to classify (``sensor_stuck``, ``sensor_spike``, ``sensor_drift``; which
sensor is named by the alarm's evidence). A sensor dropout leaves no readings: the ``stale``
rule sees it, a per-reading classifier cannot.

After a fault ends the machine is not healthy yet: a motor that overheated cools down over about
five thermal time constants. Those rows are labelled ``recovery`` (:func:`with_recovery`) and
kept out of the twin's fit, the classifier's training and the per-row scores, instead of being
taught or scored as "healthy".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from twinlib.simulate import LABELS, RECOVERY_S

__all__ = ["CLASSES", "HEALTHY", "RECOVERY", "class_labels", "with_recovery", "recovery_mask"]

HEALTHY = "healthy"
RECOVERY = "recovery"
#: Every class the simulator's labels give, in report order (dropout leaves no rows).
CLASSES: tuple[str, ...] = tuple(LABELS)


def class_labels(labels: pd.Series | Sequence, classes: Sequence[str] | None = CLASSES,
                 healthy: str = HEALTHY) -> np.ndarray:
    """Labels as class names (missing → ``healthy``); refuses labels outside ``classes``.

    ``classes=None`` accepts any label (a user's own label column names its own classes).
    """
    values = pd.Series(labels).astype(object)
    values = values.where(values.notna() & (values.astype(str) != ""), healthy)
    mapped = values.astype(str).to_numpy()
    if classes is not None:
        unknown = sorted(set(mapped) - set(classes) - {RECOVERY})
        if unknown:
            raise ValueError(f"labels outside the classifier classes: {unknown}")
    return mapped


def recovery_mask(asset_ids: np.ndarray, ms: np.ndarray, labels: np.ndarray,
                  recovery_s: Mapping[str, float] = RECOVERY_S, healthy: str = HEALTHY) -> np.ndarray:
    """Healthy rows within the recovery time after a labelled fault run of the same asset."""
    out = np.zeros(len(labels), dtype=bool)
    for asset in pd.unique(asset_ids):
        pos = np.flatnonzero(asset_ids == asset)
        pos = pos[np.argsort(ms[pos], kind="stable")]
        lab, t = labels[pos], ms[pos]
        ends = np.flatnonzero((lab[:-1] != healthy) & (lab[1:] == healthy)) + 1
        for e in ends:
            span = float(recovery_s.get(str(lab[e - 1]), 0.0))
            if span <= 0:
                continue
            stop = np.searchsorted(t, t[e] + int(span * 1000), side="left")
            inside = np.arange(e, stop)
            out[pos[inside[lab[inside] == healthy]]] = True
    return out


def with_recovery(readings: pd.DataFrame, recovery_s: Mapping[str, float] = RECOVERY_S,
                  label: str = "label", healthy: str = HEALTHY) -> pd.DataFrame:
    """A copy of ``readings`` whose ``label`` says ``recovery`` after each fault, for its time."""
    from twinlib.models.features import reading_times

    if label not in readings.columns or len(readings) == 0:
        return readings
    labels = readings[label].astype(object).where(readings[label].notna(), healthy).astype(str).to_numpy()
    ids = readings["asset_id"].to_numpy() if "asset_id" in readings.columns else np.zeros(len(readings))
    mask = recovery_mask(ids, reading_times(readings), labels, recovery_s, healthy)
    if not mask.any():
        return readings
    # a new label column on a shallow copy: the other columns (a training fleet's millions of
    # readings) are shared with ``readings``, not copied; ``readings`` itself is left as it was
    relabelled = np.array(readings[label].astype(object), dtype=object)
    relabelled[mask] = RECOVERY
    out = readings.copy(deep=False)
    out[label] = relabelled
    return out
