"""Training the fault classifiers on stored history, with a held-out split and model cards.

The split holds out whole assets *and* the end of the time range: training sees only the
training assets before ``split_ms``; evaluation scores only the test assets from
``test_start_ms = split_ms + gap`` on. No test asset and no test time range ever reaches
training (not even the twin inside the feature builder, which is fitted on training rows only);
the gap (one long feature window) keeps the held-out range from starting where training ends.
The split is written into each model card, so ``twin evaluate`` later scores exactly the rows
the model never saw.

Stored history is often poor in faults (the default ``twin generate`` fleet has one or two
episodes a day), and a classifier cannot learn a class it never saw. :func:`training_history`
therefore adds, when the stored history lacks a fault class (``augment="auto"``), a simulated
*fault library*: a seeded fleet of extra pumps (``sim-01``…) going through every fault kind
over the same time range. It joins the history before the split, so its assets are held out
and scored like any other; the card records its parameters and ``twin evaluate`` regenerates it
exactly.

Models are trained per asset kind (:mod:`twinlib.kinds`): the features are built from the kind's
signals (its ``measured`` signals, with its ``state`` signals as the clean twin's inputs),
``training_history(store, kind=…)`` reads only the assets of that kind, and the card records the
kind and its signals (``asset_kind``, ``signals``). The pump keeps the file names
``fault_detection_{rf,xgb}.pkl``; another kind's models are ``fault_detection_{rf,xgb}.<kind>.pkl``
(:func:`model_path`), so training one kind never overwrites another's. The simulated fault
library is a fleet of pumps: it joins only pump data (``auto``: when the stored history is
itself simulated), and another kind's data only on request (``augment="always"``) and only when
that kind measures the pump's signals.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twinlib.config import SENSORS
from twinlib.models.cards import retrain_reason, save_model
from twinlib.models.classifiers import (
    CLASSES,
    MODEL_KINDS,
    FaultClassifier,
    class_labels,
    rows_read,
)
from twinlib.models.features import FeatureBuilder, FeatureSpec, reading_times
from twinlib.models.labels import RECOVERY, with_recovery
from twinlib.simulate import LABELS

__all__ = ["Split", "split_history", "load_history", "fingerprint", "train_models", "model_path",
           "AUGMENT_MODES", "augmentation_spec", "augmentation_data", "training_history",
           "spec_for_kind", "kind_signals", "kind_assets", "DECISION_WEIGHTS", "dev_fleets_unfit"]

AUGMENT_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class Split:
    """Which assets and times train a model, and which are held out for its evaluation."""

    train_assets: tuple[str, ...]
    test_assets: tuple[str, ...]
    split_ms: int
    test_start_ms: int
    train_start_ms: int | None = None

    def train_mask(self, readings: pd.DataFrame) -> np.ndarray:
        """Rows a model may learn from: training assets, from ``train_start_ms`` to ``split_ms``."""
        ms = reading_times(readings)
        mask = readings["asset_id"].isin(self.train_assets).to_numpy() & (ms < self.split_ms)
        if self.train_start_ms is not None:
            mask &= ms >= self.train_start_ms
        return mask

    def test_mask(self, readings: pd.DataFrame) -> np.ndarray:
        """Rows a model is scored on: test assets, from ``test_start_ms`` on."""
        ms = reading_times(readings)
        return readings["asset_id"].isin(self.test_assets).to_numpy() & (ms >= self.test_start_ms)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train_assets"], d["test_assets"] = list(self.train_assets), list(self.test_assets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Split":
        start = d.get("train_start_ms")
        return cls(tuple(d["train_assets"]), tuple(d["test_assets"]), int(d["split_ms"]),
                   int(d["test_start_ms"]), None if start is None else int(start))


def split_history(readings: pd.DataFrame, *, test_fraction: float = 0.25,
                  time_fraction: float = 0.3, gap_s: int = 1800, seed: int = 0) -> Split:
    """Choose held-out assets and a held-out final time range for ``readings``.

    ``round(n_assets * test_fraction)`` assets (at least one) are held out; the last
    ``time_fraction`` of the time range is held out. Assets are chosen greedily (ties broken by
    a seeded shuffle) so the test range covers as many fault classes as possible while the
    training range keeps every class it had — otherwise a small fleet can leave a class with no
    test rows, or no training rows, by chance.
    """
    assets = sorted(str(a) for a in pd.unique(readings["asset_id"]))
    if not assets:
        raise ValueError("no readings to split")
    if not (0 < time_fraction < 1 and 0 < test_fraction < 1):
        raise ValueError("test_fraction and time_fraction must be between 0 and 1")
    ms = reading_times(readings)
    t0, t1 = int(ms.min()), int(ms.max())
    split_ms = t0 + int((t1 - t0) * (1.0 - time_fraction))
    test_start = split_ms + gap_s * 1000
    if test_start >= t1:
        raise ValueError("history too short for the held-out time range plus the gap "
                         f"({gap_s} s); simulate more hours")
    if len(assets) == 1:
        # One asset (a user's single machine): held out by time only — it trains before
        # ``split_ms`` and is scored from ``test_start`` on, a gap of one long window between.
        return Split(tuple(assets), tuple(assets), split_ms, test_start, t0)
    classes = class_labels(readings["label"], None) if "label" in readings.columns \
        else np.full(len(readings), "healthy")
    ids = readings["asset_id"].to_numpy()
    in_test_time, in_train_time = ms >= test_start, ms < split_ms
    test_classes = {a: set(classes[(ids == a) & in_test_time]) for a in assets}
    train_classes = {a: set(classes[(ids == a) & in_train_time]) for a in assets}
    n_test = min(max(1, int(round(len(assets) * test_fraction))), len(assets) - 1)
    order = [str(a) for a in np.random.default_rng(seed).permutation(assets)]
    chosen: list[str] = []
    for _ in range(n_test):
        covered = set().union(*(test_classes[a] for a in chosen)) if chosen else set()
        best, best_score = None, None
        for a in order:
            if a in chosen:
                continue
            rest = [b for b in assets if b not in chosen and b != a]
            kept = set().union(*(train_classes[b] for b in rest)) if rest else set()
            lost = len(set().union(*train_classes.values()) - kept)
            score = len(test_classes[a] - covered) - 2 * lost
            if not test_classes[a]:      # no rows in the held-out time range: nothing to score
                score -= 100
            if best_score is None or score > best_score:
                best, best_score = a, score
        chosen.append(best)
    test_assets = tuple(sorted(chosen))
    train_assets = tuple(a for a in assets if a not in chosen)
    return Split(train_assets, test_assets, split_ms, test_start, t0)


def load_history(store, asset: str | None = None, *, hours: float | None = None,
                 start_ms: int | None = None, assets=None) -> pd.DataFrame:
    """Stored readings (of one asset, of the ``assets`` named, or all), time-ascending, with
    labels and state.

    ``hours`` keeps only the last hours before the newest reading; ``start_ms`` starts there.
    """
    wanted = None if assets is None else {str(a) for a in assets}
    first, last = None, None
    for info in store.assets(counts=False):
        if asset is not None and info["asset_id"] != asset:
            continue
        if wanted is not None and info["asset_id"] not in wanted:
            continue
        if info.get("first_ts") is None:
            continue
        first = info["first_ts"] if first is None else min(first, info["first_ts"])
        last = info["last_ts"] if last is None else max(last, info["last_ts"])
    if first is None:
        raise ValueError("the store holds no readings; run `twin generate` and `twin store` first")
    if hours:
        first = max(first, last - int(hours * 3_600_000))
    if start_ms is not None:
        first = max(first, int(start_ms))
    if wanted is None:
        return store.window(int(first), int(last), asset=asset)
    parts = [store.window(int(first), int(last), asset=a) for a in sorted(wanted)]
    parts = [p for p in parts if len(p)]
    if len(parts) == 1:
        return parts[0]
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["ts", "asset_id"], kind="stable").reset_index(drop=True)


def spec_for_kind(kind, sensors=None, **windows) -> FeatureSpec:
    """The feature set of an asset kind: its measured signals (or the ``sensors`` chosen among
    them), with its state signals as the twin's inputs."""
    measured = tuple(kind.measured)
    if sensors:
        unknown = [s for s in sensors if s not in measured]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not measured signals of kind {kind.name!r} "
                             f"(it measures {', '.join(measured)}); define your own kind "
                             "(`twin kinds infer --csv FILE`) for other columns")
        measured = tuple(sensors)
    if not measured:
        raise ValueError(f"kind {kind.name!r} has no measured signal to build features from")
    return FeatureSpec(sensors=measured, state=tuple(kind.state), **windows)


def kind_signals(kind, spec: FeatureSpec) -> dict:
    """What the card records about the signals: ``{"measured": [{name, unit}], "state": […]}``."""
    units = kind.units

    def entry(name):
        return {"name": name, "unit": units.get(name, "")}
    return {"measured": [entry(s) for s in spec.sensors], "state": [entry(s) for s in spec.state]}


def kind_assets(store, kind_name: str, settings=None) -> list[str]:
    """The stored assets of kind ``kind_name`` (the settings' ``[assets."<id>"] kind`` first,
    then the kind the store recorded, else the pump)."""
    out = []
    for info in store.assets(counts=False):
        if settings is not None:
            name = settings.kind_for(info["asset_id"], info.get("kind")).name
        else:
            name = info.get("kind") or "pump"
        if name == kind_name:
            out.append(info["asset_id"])
    return out


#: Fault kinds the library cycles through (dropout leaves no labelled rows, so it is left out).
#: The sensor faults come twice per cycle: their episodes are short (20–90 min against hours of
#: wear), and a classifier needs many episodes, not many rows of few episodes.
_LIBRARY_KINDS = LABELS[1:] + tuple(k for k in LABELS if k.startswith("sensor_"))


def augmentation_spec(readings: pd.DataFrame, *, seed: int = 0, assets: int = 16,
                      hours: float = 48.0) -> dict:
    """Parameters of the simulated fault library for ``readings`` (JSON-ready, deterministic).

    Each library pump follows its own random schedule
    (:func:`twinlib.simulate.random_fault_schedule`): every fault kind in a shuffled order,
    random durations within each kind's range, random healthy gaps longer than the recovery —
    so a model cannot learn the schedule (fixed order, minimum durations, 30-minute gaps) in
    place of the faults.
    """
    from twinlib.config import SENSORS as sensors
    from twinlib.simulate import random_fault_schedule

    ms = reading_times(readings)
    start, span_h = int(ms.min()), (int(ms.max()) - int(ms.min())) / 3_600_000.0
    hours = round(max(span_h, float(hours)), 4)
    taken = set(str(a) for a in pd.unique(readings["asset_id"]))
    names, i = [], 1
    while len(names) < assets:
        name = f"sim-{i:02d}"
        if name not in taken:
            names.append(name)
        i += 1
    # A seed far from the store's own, so no library pump replays a stored pump's noise.
    lib_seed = 1_000_003 + int(seed)
    faults = random_fault_schedule(names, hours, seed=lib_seed, start=start, kinds=_LIBRARY_KINDS,
                                   first_after_s=(1800.0, 5400.0), min_healthy_s=1800.0,
                                   max_healthy_s=3 * 3600.0, sensors=tuple(sensors))
    step = np.diff(np.unique(ms))
    freq_s = float(np.median(step)) / 1000.0 if len(step) else 1.0
    return {"assets": names, "hours": hours, "freq_s": freq_s, "seed": lib_seed,
            "start_ms": start, "faults": faults, "schedule": "random"}


def augmentation_data(spec: dict):
    """The simulated fault library described by ``spec``: ``(readings, events)``."""
    from twinlib.simulate import simulate_fleet

    res = simulate_fleet(assets=list(spec["assets"]), hours=spec["hours"], freq_s=spec["freq_s"],
                         seed=spec["seed"], start=int(spec["start_ms"]), fault_rate=0.0,
                         faults=[dict(f) for f in spec["faults"]])
    readings = res.readings  # the simulation's own frame (nothing else holds it): no copy
    readings.insert(0, "ts", reading_times(readings))
    return readings, res.events


def is_simulated(store, assets=None) -> bool:
    """True when every stored asset (of ``assets``, when given) came from twinlib's simulator
    (its parameters are stored)."""
    infos = store.assets(counts=False)
    if assets is not None:
        infos = [a for a in infos if a["asset_id"] in set(assets)]
    return bool(infos) and all(isinstance(a.get("params"), dict) and "thermal_tau_s" in a["params"]
                               for a in infos)


def library_fits(kind) -> bool:
    """Whether the simulated pumps measure every measured signal of ``kind`` (a pump, or a kind
    that extends the pump): only then can the fault library join its data."""
    from twinlib.kinds import builtin_kind

    pump = builtin_kind("pump")
    return kind is None or set(kind.measured) <= set(pump.measured)


def training_history(store, *, augment: str = "auto", seed: int = 0, library_assets: int = 32,
                     library_hours: float = 48.0, history_hours: float | None = 48.0,
                     kind=None, settings=None):
    """Stored history (plus the fault library when asked): ``(readings, events, spec|None)``.

    Only the last ``history_hours`` of the store are used (``None``/0: all of it), so the cost
    of training stays bounded however long the live monitor has been writing.
    The library has ``library_assets`` pumps over the stored span (at least ``library_hours``).
    Simulated pumps never join a user's data silently: ``augment="auto"`` adds the library only
    when the stored history is itself simulated (every asset carries the simulator's
    parameters) and lacks a fault class; on real equipment the library is opt-in
    (``augment="always"``), and the model card records it either way.
    """
    if augment not in AUGMENT_MODES:
        raise ValueError(f"augment must be one of {AUGMENT_MODES}, got {augment!r}")
    ids = None
    if kind is None:
        readings = load_history(store, hours=history_hours)
        events = store.fault_events()
    else:
        ids = kind_assets(store, kind.name, settings)
        if not ids:
            stored = sorted({(settings.kind_for(a["asset_id"], a.get("kind")).name if settings
                              else a.get("kind") or "pump") for a in store.assets(counts=False)})
            raise ValueError(f"the store holds no assets of kind {kind.name!r} (kinds stored: "
                             f"{', '.join(stored) or 'none'}); import them with "
                             f"`twin store --csv FILE --kind {kind.name}`")
        readings = load_history(store, hours=history_hours, assets=ids)
        events = store.fault_events()
        if len(events) and "asset_id" in events.columns:
            events = events[events["asset_id"].isin(ids)].reset_index(drop=True)
    if augment == "always" and not library_fits(kind):
        raise ValueError(f"the simulated fault library is a fleet of pumps (temperature, "
                         f"vibration, pressure); kind {kind.name!r} measures "
                         f"{', '.join(kind.measured)}, so the library cannot join its data "
                         "(use --augment never or auto)")
    is_pump = kind is None or kind.name == "pump"
    present = set(class_labels(readings["label"], None)) if "label" in readings.columns else set()
    if augment == "never" or (augment == "auto" and (not is_pump or present >= set(CLASSES)
                                                     or not is_simulated(store, ids))):
        return readings, events, None
    spec = augmentation_spec(readings, seed=seed, assets=library_assets, hours=library_hours)
    extra, extra_events = augmentation_data(spec)
    columns = [c for c in readings.columns if c in extra.columns]
    merged = pd.concat([readings[columns], extra[columns]], ignore_index=True)
    events = pd.concat([events, extra_events], ignore_index=True) if len(events) else extra_events
    return merged, events, spec


def fingerprint(readings: pd.DataFrame, signals=None) -> dict:
    """A content hash and summary of the rows a model was trained on (``signals``: the measured
    signals hashed; default the pump's)."""
    signals = tuple(SENSORS) if signals is None else tuple(signals)
    cols = ["asset_id"] + [c for c in (*signals, "label") if c in readings.columns]
    frame = readings[cols].copy()
    frame.insert(0, "ts", reading_times(readings))
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    ms = frame["ts"].to_numpy()
    return {
        "sha256": hashlib.sha256(hashed.tobytes()).hexdigest(),
        "rows": int(len(frame)),
        "assets": sorted(str(a) for a in pd.unique(frame["asset_id"])),
        "start_ms": int(ms.min()) if len(ms) else None,
        "end_ms": int(ms.max()) if len(ms) else None,
    }


def model_path(models_dir: str | os.PathLike, kind: str, asset_kind: str | None = None) -> Path:
    """``<models_dir>/fault_detection_<kind>.pkl`` for pumps (``asset_kind`` None or ``"pump"``),
    ``<models_dir>/fault_detection_<kind>.<asset_kind>.pkl`` for another asset kind."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    suffix = "" if asset_kind in (None, "pump") else f".{asset_kind}"
    return Path(models_dir) / f"{MODEL_KINDS[kind]}{suffix}.pkl"


def models_to_train(models_dir: str | os.PathLike, kinds=tuple(MODEL_KINDS),
                    asset_kind: str | None = None) -> list[str]:
    """Why the ``kinds`` models of ``asset_kind`` must be trained: each one missing, or trained
    on features this twinlib no longer computes (an upgrade); empty when all of them load."""
    reasons = (retrain_reason(model_path(models_dir, k, asset_kind)) for k in kinds)
    return [r for r in reasons if r]


#: Accepted ``decision_weights`` of :func:`train_models`.
DECISION_WEIGHTS = ("dev", "none")


def dev_fleets_unfit(asset_kind, spec: FeatureSpec, classes) -> str | None:
    """Why simulated development fleets cannot choose decision weights for these models (None
    when they can): the fleets are pumps with the simulator's classes, sensors and state."""
    from twinlib.kinds import builtin_kind

    pump = spec_for_kind(builtin_kind("pump"))
    if classes is None or set(classes) - set(CLASSES):
        return "the models learn their own classes, which the simulated fleets do not label"
    if list(spec.sensors) != list(pump.sensors) or set(spec.state or ()) - set(pump.state or ()):
        return (f"kind {getattr(asset_kind, 'name', asset_kind)!r} measures "
                f"{', '.join(spec.sensors)}; the simulated fleets measure "
                f"{', '.join(pump.sensors)}")
    return None


def train_models(readings: pd.DataFrame, models_dir: str | os.PathLike, *,
                 kinds: tuple[str, ...] = ("rf", "xgb"), seed: int = 0,
                 max_train_rows: int = 60_000, spec: FeatureSpec | None = None,
                 source: str | None = None, augmentation: dict | None = None,
                 class_weight="balanced", classes=CLASSES, library_mode: str | None = None,
                 asset_kind=None, calibration: str = "isotonic",
                 decision_weights: str = "none", decision_fleets: Mapping | None = None,
                 progress=None) -> dict[str, dict]:
    """Train one classifier per kind on the training split, score it held out, save it + card.

    Returns ``{kind: card}``. ``progress`` (a callable taking a message) reports each step.
    ``augmentation`` is the fault-library spec that ``readings`` includes (recorded in the card).
    Healthy rows within the recovery time after a fault are relabelled ``recovery``
    (:func:`twinlib.models.labels.with_recovery`): neither learned from nor scored.
    ``classes=None`` learns whatever labels the data holds (a user's own label column);
    ``class_weight`` as :class:`~twinlib.models.classifiers.FaultClassifier`. ``spec`` names the
    windows and the signals (sensors and operating state). ``asset_kind`` (a
    :class:`twinlib.kinds.Kind`, default the pump) gives the signals when ``spec`` is not given,
    the file names (:func:`model_path`) and the card's ``asset_kind`` and ``signals``.
    ``calibration`` as :class:`~twinlib.models.classifiers.FaultClassifier` (the card's
    ``calibration`` records the method, folds and Brier scores before and after).
    ``decision_weights``: ``"dev"`` chooses each model's decision weights on simulated
    development fleets (:func:`twinlib.models.random_eval.choose_decision_weights_on_fleets`;
    ``decision_fleets`` overrides its ``seeds`` / ``assets`` / ``hours``) before the held-out
    score — only for models of the simulator's classes and signals; ``"none"`` keeps weights of
    1. The card's ``decision`` records which.
    """
    from twinlib.kinds import builtin_kind
    from twinlib.models.metrics import classification_scores

    say = progress or (lambda msg: None)
    asset_kind = asset_kind or builtin_kind("pump")
    spec = spec or spec_for_kind(asset_kind)
    if decision_weights not in DECISION_WEIGHTS:
        raise ValueError(f"decision_weights must be one of {DECISION_WEIGHTS}, "
                         f"not {decision_weights!r}")
    if decision_weights == "dev":
        why_not = dev_fleets_unfit(asset_kind, spec, classes)
        if why_not:
            raise ValueError(f"decision weights on development fleets: {why_not}")
    missing = [s for s in spec.sensors if s not in readings.columns
               or not readings[s].notna().any()]
    if missing:
        raise ValueError(f"the history of kind {asset_kind.name!r} has no readings of "
                         f"{', '.join(missing)}")
    original = readings
    readings = with_recovery(readings)
    split = split_history(readings, gap_s=spec.long_window_s, seed=seed)
    train = readings[split.train_mask(readings)]
    test_history = readings[readings["asset_id"].isin(split.test_assets).to_numpy()]
    # Rows without a label (real data of unknown condition) and recovery rows are not scored.
    test_rows = (split.test_mask(test_history) & test_history["label"].notna().to_numpy()
                 & (test_history["label"].astype(str) != RECOVERY).to_numpy())
    y_test = class_labels(test_history["label"], classes)[test_rows]
    if len(y_test) == 0:
        raise ValueError("no labelled readings of the held-out assets in the held-out time range "
                         f"(test assets {list(split.test_assets)}); give more hours of history")
    # the fingerprint is of the rows as given (``twin evaluate`` re-reads them as stored)
    data_print = fingerprint(original[split.train_mask(original)], spec.sensors)
    models = {kind: FaultClassifier.for_spec(
        kind, spec, seed=seed, max_train_rows=max_train_rows, class_weight=class_weight,
        classes=classes, calibration=calibration) for kind in kinds}
    # The classifiers read the features of a stride of the training rows and of the rows their
    # calibration scores, known from the labels alone: the features are computed asset by asset
    # and only those rows kept (the same values, a fraction of the memory).
    rows = rows_read(models.values(), train)
    say(f"computing features of {len(train):,} training readings ({len(split.train_assets)} "
        f"assets), keeping the {len(rows):,} the models read")
    started = time.perf_counter()
    builder = FeatureBuilder(spec.window_s, spec.long_window_s, spec.baseline_s, seed=seed,
                             sensors=spec.sensors, state=spec.state).fit(train)
    X_train = builder.transform(train, rows=rows)
    X_test = builder.transform(test_history, rows=np.flatnonzero(test_rows))
    feature_seconds = time.perf_counter() - started
    fit_seconds = {}
    for kind, model in models.items():
        say(f"training {kind}")
        started = time.perf_counter()
        model.fit(train, builder=builder, features=X_train, rows=rows)
        fit_seconds[kind] = time.perf_counter() - started + feature_seconds
    if decision_weights == "dev":
        from twinlib.models.random_eval import choose_decision_weights_on_fleets

        started = time.perf_counter()
        choose_decision_weights_on_fleets(models, progress=say, **dict(decision_fleets or {}))
        shared = (time.perf_counter() - started) / len(models)
        fit_seconds = {k: v + shared for k, v in fit_seconds.items()}
    cards = {}
    for kind, model in models.items():
        seconds = fit_seconds[kind]
        scores = classification_scores(y_test, model.predict_features(X_test))
        say(f"{kind}: held-out macro-F1 {scores['macro_f1']:.3f} on {len(y_test):,} readings "
            f"({seconds:.1f} s)")
        card = {
            "name": MODEL_KINDS[kind],
            "kind": kind,
            "asset_kind": asset_kind.name,
            "signals": kind_signals(asset_kind, spec),
            "estimator": type(model.estimator_).__name__,
            "features": model.feature_names_,
            "feature_spec": spec.to_dict(),
            "classes": [str(c) for c in model.classes_],
            "all_classes": list(CLASSES) if classes is None else list(classes),
            "class_weight": class_weight,
            "calibration": model.calibration_,
            "decision": getattr(model, "decision_", None) or {
                "method": "none", "weights": {str(c): 1.0 for c in model.classes_}},
            "recovery_rows_excluded": int((readings["label"].astype(str) == RECOVERY).sum())
            if "label" in readings.columns else 0,
            "metrics": {"held_out": scores},
            "training_data": {
                **data_print,
                "source": source,
                "augmentation": augmentation,
                "library": {"mode": library_mode, "used": augmentation is not None,
                            "pumps": len(augmentation["assets"]) if augmentation else 0},
                "rows_used": model.n_train_rows_,
                "class_counts": model.train_class_counts_,
                "source_class_counts": model.source_class_counts_,
                "subsampled": model.n_train_rows_ < model.n_source_rows_,
                "subsampling": (
                    f"features computed on all {model.n_source_rows_:,} training readings; the "
                    f"classifier was fitted on an even per-asset stride of {model.n_train_rows_:,}"
                    f" (cap {max_train_rows:,})"
                ),
            },
            "split": split.to_dict(),
            "seed": seed,
            "training_seconds": round(seconds, 2),
            "feature_seconds": round(feature_seconds, 2),
            "top_features": dict(list(model.feature_importances().items())[:10]),
        }
        cards[kind] = save_model(model, model_path(models_dir, kind, asset_kind.name), card)
    return cards
