"""Per-row classification scores, shared by training (held-out score), evaluation and the
random-schedule study (one definition, so every report computes macro-F1 the same way)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from twinlib.models.labels import CLASSES

__all__ = ["classification_scores"]


def classification_scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict:
    """Macro-F1, accuracy, per-class scores and the confusion matrix (rows: truth)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=str)
    y_pred = np.asarray(y_pred, dtype=str)
    if len(y_true) == 0:
        raise ValueError("no held-out rows to score")
    order = list(CLASSES) + sorted((set(y_true) | set(y_pred)) - set(CLASSES))
    present = [c for c in order if c in set(y_true)]
    labels = [c for c in order if c in set(y_true) | set(y_pred)]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(labels)
    }
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])),
        "accuracy": float(np.mean(y_true == y_pred)),
        "n": int(len(y_true)),
        "classes_scored": present,
        "per_class": per_class,
        "confusion": {"labels": labels, "matrix": cm.tolist()},
    }
