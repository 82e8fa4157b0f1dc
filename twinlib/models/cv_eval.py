"""Cross-validation grouped by asset: the honest evaluation of models on a user's own labelled data.

A user's kind has no simulator to draw unseen fleets from, so :func:`evaluate_own_history`
holds out whole assets instead: the assets are dealt into ``folds`` groups (seeded), and for
each group a clean twin, feature builder and classifier are fitted on the *other* assets only,
then score the group's readings — per reading (macro-F1, recall per class) and as alarms
(:class:`~twinlib.models.alarm_rule.FaultModelRule`: episodes found, delay after the onset,
lead before the first threshold alarm on the kind's warning limits, false alarms per asset per
day). One asset alone is cut into ``folds`` blocks of time instead, a long feature window of
the neighbouring blocks left out on each side of the one scored. The report has the shape of
:func:`twinlib.models.random_eval.evaluate_random` (``per_seed`` holds the folds), so
``twin evaluate --kind K --history CSV --label-column C`` prints the same table and the same
last-line fields.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from twinlib.models.alarm_rule import FaultModelRule, FaultRuleSettings, alarms_from_proba
from twinlib.models.features import FeatureBuilder, reading_times
from twinlib.models.labels import HEALTHY, RECOVERY, class_labels, with_recovery
from twinlib.models.random_eval import (
    _score_alarms,
    model_entry,
    threshold_alarm_times,
)

__all__ = ["evaluate_own_history", "label_episodes"]

_MIN = 60_000


def label_episodes(ids: np.ndarray, ms: np.ndarray, labels: np.ndarray,
                   max_gap_ms: int = 60_000) -> list[dict]:
    """Runs of one non-healthy label per asset (time order) → episodes ``{asset_id, kind,
    onset, end, recovered}``; a gap longer than ``max_gap_ms`` between readings ends a run."""
    out = []
    for asset in pd.unique(ids):
        pos = np.flatnonzero(ids == asset)
        pos = pos[np.argsort(ms[pos], kind="stable")]
        lab, t = labels[pos], ms[pos]
        start = None
        for i in range(len(pos) + 1):
            end_run = (i == len(pos) or start is not None and (
                lab[i] != lab[start] or t[i] - t[i - 1] > max_gap_ms))
            if start is not None and end_run:
                out.append({"asset_id": str(asset), "kind": str(lab[start]), "sensor": None,
                            "onset": int(t[start]), "end": int(t[i - 1]),
                            "recovered": int(t[i - 1])})
                start = None
            if i < len(pos) and start is None and lab[i] not in (HEALTHY, RECOVERY):
                start = i
    return out


def _folds(readings: pd.DataFrame, folds: int, seed: int, gap_ms: int):
    """(fold name, train mask, test mask) per fold: by asset, or by time for one asset."""
    ids = readings["asset_id"].astype(str).to_numpy()
    assets = sorted(pd.unique(ids))
    ms = reading_times(readings)
    if len(assets) >= 2:
        n = min(int(folds), len(assets))
        order = np.random.default_rng(seed).permutation(len(assets))
        group = {assets[j]: k % n for k, j in enumerate(order)}
        g = np.array([group[a] for a in ids])
        for k in range(n):
            held = sorted(a for a, v in group.items() if v == k)
            yield ",".join(held), g != k, g == k
        return
    t0, t1 = int(ms.min()), int(ms.max()) + 1
    edges = np.linspace(t0, t1, int(folds) + 1).astype("int64")
    for k in range(int(folds)):
        test = (ms >= edges[k]) & (ms < edges[k + 1])
        train = (ms < edges[k] - gap_ms) | (ms >= edges[k + 1] + gap_ms)
        yield f"{assets[0]} block {k + 1}", train, test


def evaluate_own_history(readings: pd.DataFrame, kind, *, models: Sequence[str] = ("rf", "xgb"),
                         folds: int = 5, seed: int = 0, every_s: int = 5, spec=None,
                         class_weight="balanced", max_train_rows: int = 60_000,
                         calibration: str = "isotonic",
                         rule_settings: FaultRuleSettings | None = None, progress=None) -> dict:
    """Grouped cross-validation of each model kind on labelled ``readings`` of asset ``kind``.

    ``readings``: ``asset_id``, a time column, the kind's signals and ``label`` (the classes
    are whatever it holds; missing = healthy). Returns ``{"protocol", "folds", "assets",
    "every_s", "settings", "models": {model: {per_seed, macro_f1, recall, min_class_recall,
    alarms, reliability}}}`` — the shape of
    :func:`~twinlib.models.random_eval.evaluate_random`, with one ``per_seed`` entry per fold.
    """
    from twinlib.models.classifiers import FaultClassifier, rows_read
    from twinlib.models.metrics import classification_scores
    from twinlib.models.train import spec_for_kind

    say = progress or (lambda msg: None)
    if "label" not in readings.columns or readings["label"].isna().all():
        raise ValueError("cross-validation needs a label column with at least one label")
    spec = spec or spec_for_kind(kind)
    readings = with_recovery(readings.reset_index(drop=True))
    ms = reading_times(readings)
    ids = readings["asset_id"].astype(str).to_numpy()
    truth_all = class_labels(readings["label"], None)
    if len(set(truth_all) - {RECOVERY}) < 2:
        raise ValueError("the label column holds a single class; a classifier needs two")
    rule = FaultModelRule(rule_settings)
    grace = int(rule.settings.clear_s * 1000)
    episodes_all = label_episodes(ids, ms, truth_all)
    first_thr_all = _first_limit_alarms(readings, ms, ids, episodes_all, kind, spec.sensors)
    per_fold: dict[str, list[dict]] = {m: [] for m in models}
    conf: dict[str, list] = {m: [] for m in models}
    asset_days = 0.0
    fold_names = []
    for name, train, test in _folds(readings, folds, seed, spec.long_window_s * 1000):
        train &= truth_all != RECOVERY
        if len(set(truth_all[train])) < 2 or not test.any():
            say(f"fold {name}: skipped (training rows hold fewer than two classes)")
            continue
        fold_names.append(name)
        say(f"fold {name}: fitting on {int(train.sum()):,} readings")
        tr = readings[train]
        builder = FeatureBuilder(spec.window_s, spec.long_window_s, spec.baseline_s, seed=seed,
                                 sensors=spec.sensors, state=spec.state).fit(tr)
        clfs = {m: FaultClassifier.for_spec(
            m, spec, seed=seed, max_train_rows=max_train_rows, class_weight=class_weight,
            classes=None, calibration=calibration) for m in models}
        # only the rows the classifiers read (their stride and calibration rows) keep features
        rows = rows_read(clfs.values(), tr)
        X_train = builder.transform(tr, rows=rows)
        # a held-out asset's features come from its own history (causal), never the others'
        test_assets = sorted(pd.unique(ids[test]))
        hist = np.isin(ids, test_assets) if len(pd.unique(ids)) > 1 else np.ones(len(ids), bool)
        frame = readings[hist]
        test_in_hist = test[hist]
        scored = test_in_hist & ((ms[hist] // 1000) % every_s == 0) & (truth_all[hist] != RECOVERY)
        X = builder.transform(frame, rows=np.flatnonzero(scored))
        truth = truth_all[hist][scored]
        s_ids, s_ms = ids[hist][scored], ms[hist][scored]
        for a in pd.unique(s_ids):
            t = s_ms[s_ids == a]
            asset_days += (int(t.max()) - int(t.min())) / 86_400_000.0 / len(models)
        in_fold = [k for k, e in enumerate(episodes_all)
                   if e["asset_id"] in set(s_ids) and test_in_hist.any()
                   and ((s_ids == e["asset_id"]) & (s_ms >= e["onset"]) & (s_ms <= e["end"])).any()]
        episodes = [episodes_all[k] for k in in_fold]
        first_thr = {i: first_thr_all.get(k) for i, k in enumerate(in_fold)}
        for m in models:
            model = clfs[m].fit(tr, builder=builder, features=X_train, rows=rows)
            proba = model.predict_proba_features(X)
            classes = [str(c) for c in model.classes_]
            pred = model.decide(proba).astype(str)
            row = classification_scores(truth, pred)
            conf[m].append((proba.max(axis=1), pred == truth))
            alarms = {}
            for asset in pd.unique(s_ids):
                pick = np.flatnonzero(s_ids == asset)
                pick = pick[np.argsort(s_ms[pick], kind="stable")]
                alarms[str(asset)] = alarms_from_proba(s_ms[pick], proba[pick], classes, rule)
            per_fold[m].append({"seed": name, "row": row,
                                "alarms": _score_alarms(alarms, episodes, first_thr, grace)})
            say(f"  {m}: macro-F1 {row['macro_f1']:.3f}")
    if not fold_names:
        raise ValueError("no fold could be trained: every training part held a single class "
                         "(give more assets, or a longer history of the one asset)")
    out = {"protocol": "grouped_cv", "group_by": "asset" if len(pd.unique(ids)) > 1 else "time",
           "folds": fold_names, "assets": sorted(pd.unique(ids)), "every_s": every_s,
           "asset_kind": kind.name, "settings": vars(rule.settings).copy(), "models": {}}
    for m, results in per_fold.items():
        if not results:
            continue
        # the alarms are pooled per assets × hours / 24 × runs: give it the asset-days measured
        days_per_fold = asset_days / len(results)
        out["models"][m] = model_entry(results, 1, 24.0 * days_per_fold,
                                       exclude_from_min=(HEALTHY,), conf=conf[m])
    return out


def _first_limit_alarms(readings, ms, ids, episodes, kind, sensors) -> dict[int, int | None]:
    """Per episode: the first held warning-limit alarm of its asset inside it (None: none)."""
    times: dict[str, np.ndarray] = {}
    for asset in pd.unique(ids):
        pos = np.flatnonzero(ids == asset)
        pos = pos[np.argsort(ms[pos], kind="stable")]
        found = []
        for s in sensors:
            sig = kind.signal(s)
            v = pd.to_numeric(readings[s].iloc[pos], errors="coerce").to_numpy(dtype="float64")
            if sig.warning_high is not None:
                found.append(threshold_alarm_times(v, ms[pos], sig.warning_high, "high"))
            if sig.warning_low is not None:
                found.append(threshold_alarm_times(v, ms[pos], sig.warning_low, "low"))
        times[str(asset)] = np.sort(np.concatenate(found)) if found else np.array([], "int64")
    out = {}
    for k, e in enumerate(episodes):
        t = times.get(e["asset_id"], np.array([], "int64"))
        inside = t[(t >= e["onset"]) & (t <= e["end"])]
        out[k] = int(inside[0]) if len(inside) else None
    return out
