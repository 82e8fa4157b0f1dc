"""Decision weights: which fault a reading is called, from its calibrated class probabilities.

A classifier's probabilities are calibrated (:class:`~twinlib.models.classifiers.FaultClassifier`),
and the alarm rule reads them as they are (:mod:`twinlib.models.alarm_rule`). The *per-reading*
answer — the class a reading is called, what macro-F1 and recall per class score — is the class
with the largest probability after one weight per class (``argmax(p × w)``). With every weight 1
that is the most likely class, which serves the common classes best: a reading early in a bearing
wear episode, whose vibration has moved 1–5 %, is more often healthy than worn on the training
fleet's mix, so the rarer, slower fault loses the readings where it is only beginning.

:func:`choose_decision_weights` picks the weights on *development* runs (probabilities and truth
of fleets no evaluation scores) by coordinate ascent over :data:`WEIGHT_GRID`: a change is kept
when it raises the lowest recall of any class while the mean macro-F1 stays at least the
unweighted one (the issue's two targets: every class found, and the headline not paid for it);
ties go to the higher macro-F1. Nothing here sees an evaluation seed; the weights are stored on
the model and its card, and everything that calls a reading's class uses them
(:meth:`FaultClassifier.decide`).

Why on simulated development fleets and not on the training data's own out-of-fold
probabilities: measured for the default RandomForest (feature version 4), weights chosen on the
out-of-fold probabilities of the training library changed nothing on other fleets (bearing wear
recall 0.744 → 0.744 on seeds 200–204): the library's episodes are not the schedule the models
meet. Weights chosen on development fleets 100–104 raised it to 0.783 on 200–204, with macro-F1
0.912 → 0.914. A user's own history has no development fleets: its models keep weights of 1
(their card says so).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["WEIGHT_GRID", "choose_decision_weights", "decision_scores"]

#: The weights tried for each class.
WEIGHT_GRID = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


def _scores(runs, weights: np.ndarray, n: int) -> tuple[float, np.ndarray, list[float]]:
    """Mean macro-F1 over the runs, recall per class (mean over runs that hold it), per-run F1."""
    f1s, recalls = [], []
    for proba, truth in runs:
        pred = np.argmax(proba * weights, axis=1)
        cm = np.bincount(truth * n + pred, minlength=n * n).reshape(n, n)
        support, called, hit = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
        present = support > 0
        recall = np.where(present, hit / np.maximum(support, 1), np.nan)
        precision = hit / np.maximum(called, 1)
        f1 = np.where(hit > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        f1s.append(float(f1[present].mean()))
        recalls.append(recall)
    stacked = np.vstack(recalls)
    held = ~np.isnan(stacked)
    per_class = np.where(held.any(axis=0),
                         np.where(held, stacked, 0.0).sum(axis=0) / np.maximum(held.sum(axis=0), 1),
                         np.nan)
    return float(np.mean(f1s)), per_class, f1s


def decision_scores(runs: Sequence[tuple[np.ndarray, np.ndarray]], classes: Sequence[str],
                    weights=None) -> dict:
    """Mean macro-F1, worst run and recall per class of ``runs`` at ``weights`` (default 1)."""
    n = len(classes)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype="float64")
    f1, recall, f1s = _scores(_coded(runs, classes), w, n)
    rec = {c: float(r) for c, r in zip(classes, recall) if not np.isnan(r)}
    return {"macro_f1": f1, "macro_f1_worst": float(min(f1s)), "recall": rec,
            "min_class_recall": min(rec.values()) if rec else None}


def _coded(runs, classes) -> list[tuple[np.ndarray, np.ndarray]]:
    index = {str(c): i for i, c in enumerate(classes)}
    out = []
    for proba, truth in runs:
        truth = np.asarray(truth)
        if truth.dtype.kind in "iu":
            codes = truth.astype("int64")
        else:
            unknown = sorted(set(map(str, truth)) - set(index))
            if unknown:
                raise ValueError(f"development truth holds classes the model does not know: "
                                 f"{unknown}")
            codes = np.fromiter((index[str(t)] for t in truth), dtype="int64", count=len(truth))
        proba = np.asarray(proba, dtype="float64")
        if proba.ndim != 2 or proba.shape[1] != len(classes) or len(proba) != len(codes):
            raise ValueError("each development run needs probabilities (rows × classes) and one "
                             "true class per row")
        out.append((proba, codes))
    if not out:
        raise ValueError("choose_decision_weights needs at least one development run")
    return out


def choose_decision_weights(runs: Sequence[tuple[np.ndarray, np.ndarray]],
                            classes: Sequence[str], *, grid: Sequence[float] = WEIGHT_GRID,
                            rounds: int = 3) -> dict:
    """Weights per class from development ``runs`` of ``(probabilities, true classes)``.

    Coordinate ascent from all-ones over ``grid``, at most ``rounds`` passes (see the module
    docstring for the rule). Returns ``{"weights": {class: w}, "before": …, "after": …}`` with
    :func:`decision_scores` at all-ones and at the chosen weights.
    """
    classes = [str(c) for c in classes]
    coded = _coded(runs, classes)
    n = len(classes)
    w = np.ones(n)
    floor, recall, _ = _scores(coded, w, n)

    def key(weights):
        f1, rec, _ = _scores(coded, weights, n)
        ok = f1 >= floor - 1e-12
        return (ok, round(float(np.nanmin(rec)), 6) if ok else -1.0, round(f1, 6))

    best = key(w)
    for _ in range(max(1, int(rounds))):
        changed = False
        for j in range(n):
            for g in grid:
                if g == w[j]:
                    continue
                trial = w.copy()
                trial[j] = float(g)
                k = key(trial)
                if k > best:
                    best, w, changed = k, trial, True
        if not changed:
            break
    return {"weights": {c: float(v) for c, v in zip(classes, w)},
            "objective": "raise the lowest class recall; mean macro-F1 no lower than at weights 1",
            "grid": [float(g) for g in grid],
            "before": decision_scores(coded, classes), "after": decision_scores(coded, classes, w)}
