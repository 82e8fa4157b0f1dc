"""The steps the notebooks and ``twin train`` / ``twin evaluate`` run: one function per step.

Each takes paths (``""`` or ``None`` means "the setting": ``TWIN_DB``, ``TWIN_MODELS_DIR``,
``TWIN_REPORTS_DIR``), does one thing, and returns a small JSON-ready summary, so a notebook
stays a list of calls and the command line does the very same work without Jupyter.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "resolve_paths",
    "generate_history",
    "train",
    "evaluate",
    "explore_asset",
    "write_figures",
    "jsonable",
]


def resolve_paths(db_path: str | None = None, models_dir: str | None = None,
                  reports_dir: str | None = None) -> dict[str, Path]:
    """The database, models and reports paths: explicit value, else the settings."""
    from twinlib.config import get_settings

    s = get_settings(db_path=db_path or None, models_dir=models_dir or None,
                     reports_dir=reports_dir or None)
    return {"db_path": s.db_path, "models_dir": Path(s.models_dir),
            "reports_dir": Path(s.reports_dir)}


def _open(db_path, *, create: bool = False):
    from twinlib.store import open_store

    return open_store(resolve_paths(db_path=db_path)["db_path"], create=create)


def generate_history(db_path: str | None = None, *, assets: int = 4, hours: float = 24.0,
                     freq_s: float = 1.0, seed: int = 42, fault_rate: float = 2.0,
                     start: str | None = "2026-02-10 00:00:00") -> dict:
    """Simulate a fleet and load it into the store through the one validation path.

    Loading is idempotent: readings already stored are kept once. Returns counts per label and
    the number of fault episodes (with and without a failure time).
    """
    from twinlib.ingest import ingest_frame
    from twinlib.simulate import simulate_fleet

    started = time.perf_counter()
    res = simulate_fleet(assets=assets, hours=hours, freq_s=freq_s, seed=seed, start=start or None,
                         fault_rate=fault_rate)
    path = resolve_paths(db_path=db_path)["db_path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, create=True) as store:
        report = ingest_frame(store, res.readings, source="simulator")
        store.upsert_assets(res.assets)
        store.load_fault_events(res.events)
    labels = res.readings["label"].value_counts()
    return {
        "db_path": str(path),
        "assets": int(assets),
        "hours": float(hours),
        "readings": int(len(res.readings)),
        "inserted": int(report.inserted),
        "duplicates": int(report.duplicates),
        "rejected": int(len(report.rejects)),
        "label_counts": {str(k): int(v) for k, v in labels.items()},
        "episodes": int(len(res.events)),
        "failures": int(res.events["failure"].notna().sum()),
        "events": res.events.assign(
            **{c: res.events[c].astype(str) for c in ("onset", "end", "failure")}
        ).to_dict("records"),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _file_asset(path: Path) -> str:
    """An asset id for a file without an ``asset_id`` column: ``valve1/3.csv`` → ``valve1-3``."""
    stem = path.stem
    if stem.isdigit():
        stem = f"{path.parent.name}-{stem}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-")[:64] or "asset"


def read_labelled_history(path, label_column: str = "label", sensors=None,
                          kind=None) -> pd.DataFrame:
    """A user's labelled history from one CSV file or several: a timestamp column
    (``timestamp`` or ``datetime``), the kind's signals, a label column, and ``asset_id`` (a
    file without it is one asset named after the file, e.g. SKAB's ``valve1/3.csv`` →
    ``valve1-3``). Comma- or semicolon-separated.

    ``kind`` (a :class:`twinlib.kinds.Kind`, default the pump) names the signals; a column whose
    name differs from a signal's only by punctuation or spaces is that signal (SKAB's
    ``Volume Flow RateRMS`` → ``Volume_Flow_RateRMS``). The label column (any name) becomes
    ``label``; its values name the classes (``healthy`` for normal operation; empty = unknown,
    not learned from). A numeric 0/1 column (SKAB's ``anomaly``) means healthy / the column's
    name. Columns that are neither are not used and are listed in ``attrs["ignored_columns"]``.
    Clear errors for what is missing.
    """
    from twinlib.kinds import builtin_kind

    kind = kind or builtin_kind("pump")
    paths = [Path(p) for p in ([path] if isinstance(path, (str, os.PathLike)) else list(path))]
    if not paths:
        raise ValueError("no history file given")
    measured = list(sensors or kind.measured)
    frames, ignored = [], set()
    for p in paths:
        try:
            df = pd.read_csv(p, sep=None, engine="python")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{p}: cannot read the history ({exc})") from None
        df.columns = [str(c).strip() for c in df.columns]
        squash = {re.sub(r"[^A-Za-z0-9]+", "_", n).strip("_").lower(): n for n in kind.names}
        rename = {}
        for c in df.columns:
            if c not in kind.names and c != label_column:
                target = squash.get(re.sub(r"[^A-Za-z0-9]+", "_", c).strip("_").lower())
                if target and target not in df.columns:
                    rename[c] = target
        if "timestamp" not in df.columns and "datetime" in df.columns:
            rename["datetime"] = "timestamp"
        df = df.rename(columns=rename)
        missing = [c for c in ("timestamp", label_column, *measured) if c not in df.columns]
        if missing:
            raise ValueError(f"{p}: missing columns {missing} for kind {kind.name!r}; have "
                             f"{list(df.columns)}")
        if label_column != "label":
            df = df.drop(columns=[c for c in ("label",) if c in df.columns])
            df = df.rename(columns={label_column: "label"})
        if "asset_id" not in df.columns:
            df.insert(1, "asset_id", _file_asset(p))
        ts = pd.to_datetime(df["timestamp"], errors="coerce", utc=True)
        if ts.isna().any():
            bad = int(np.flatnonzero(ts.isna().to_numpy())[0]) + 2
            raise ValueError(f"{p}: line {bad}: unreadable timestamp "
                             f"{df['timestamp'].iloc[bad - 2]!r}")
        df["timestamp"] = ts.dt.tz_localize(None).astype("datetime64[ms]")
        signals = [c for c in kind.names if c in df.columns and (c in measured or c in kind.state)]
        for c in signals:
            df[c] = pd.to_numeric(df[c], errors="coerce")
        labels = df["label"]
        numeric = pd.to_numeric(labels, errors="coerce")
        if labels.notna().any() and numeric.notna().sum() == labels.notna().sum() \
                and set(numeric.dropna().unique()) <= {0, 1}:
            name = "label" if label_column == "label" else label_column
            labels = numeric.map({0: "healthy", 1: name})
        df["label"] = labels.astype(object).where(labels.notna(), None)
        ignored |= set(df.columns) - {"timestamp", "asset_id", "label", *signals}
        frames.append(df[["timestamp", "asset_id", *signals, "label"]])
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    out = out.sort_values(["timestamp", "asset_id"], kind="stable").reset_index(drop=True)
    out.attrs["ignored_columns"] = sorted(ignored)
    return out


def train(db_path: str | None = None, models_dir: str | None = None, *, seed: int = 0,
          max_train_rows: int = 60_000, augment: str = "auto", library_assets: int = 32,
          library_hours: float = 48.0, history_hours: float | None = 48.0, kinds=("rf", "xgb"),
          history=None, label_column: str = "label", class_weight="balanced",
          sensors=None, asset_kind: str | None = None, decision_weights: str = "auto",
          progress=None) -> dict:
    """Train both classifiers on the stored history; save models + cards. Returns a summary.

    ``asset_kind`` (default the pump) picks the stored assets of that kind and the signals the
    features are built from; another kind's models are written beside the pump's, not over them
    (``fault_detection_<model>.<kind>.pkl``). ``history`` (a CSV path, or several) trains on a
    user's own labelled history instead of the store, with its own classes (``label_column``);
    the simulated library joins a user's data only with ``augment="always"`` and only when the
    kind measures the pump's signals. ``class_weight``: ``"balanced"``, ``"none"`` or class →
    weight. ``sensors`` restricts the features to some of the kind's measured signals.
    ``decision_weights``: ``"auto"`` (default) chooses each model's decision weights on simulated
    development fleets when simulated pumps are part of the training data (the fault library
    joined it), else keeps weights of 1; ``"dev"`` / ``"none"`` force either (see
    :mod:`twinlib.models.decision`).
    """
    from twinlib.config import get_settings
    from twinlib.models.labels import CLASSES
    from twinlib.models.train import (
        DECISION_WEIGHTS,
        augmentation_data,
        augmentation_spec,
        dev_fleets_unfit,
        library_fits,
        model_path,
        spec_for_kind,
        train_models,
        training_history,
    )

    paths = resolve_paths(db_path=db_path, models_dir=models_dir)
    settings = get_settings(db_path=str(paths["db_path"]))
    kind = settings.kind(asset_kind or "pump")
    feature_spec = spec_for_kind(kind, sensors)
    say = progress or (lambda msg: None)
    started = time.perf_counter()
    classes = "default"
    ignored: list[str] = []
    if history:
        readings = read_labelled_history(history, label_column, feature_spec.sensors, kind)
        ignored = readings.attrs.get("ignored_columns", [])
        if ignored:
            say(f"columns not used (not signals of kind {kind.name!r}): {', '.join(ignored)}")
        spec = None
        if augment == "always":
            if not library_fits(kind):
                raise ValueError(f"the simulated fault library is a fleet of pumps; kind "
                                 f"{kind.name!r} measures {', '.join(kind.measured)}, so it cannot "
                                 "join this data (use --augment never)")
            spec = augmentation_spec(readings, seed=seed, assets=library_assets, hours=library_hours)
            extra, _ = augmentation_data(spec)
            columns = [c for c in readings.columns if c in extra.columns]
            readings = pd.concat([readings[columns], extra.drop(columns=["ts"])[columns]],
                                 ignore_index=True)
        classes = None
        source = ", ".join(str(h) for h in ([history] if isinstance(history, (str, os.PathLike))
                                            else history))
    else:
        if label_column != "label":
            raise ValueError("the store keeps one label column (`label`, filled by the CSV "
                             "import's label column); --label-column names a column of "
                             "--history files")
        with _open(paths["db_path"]) as store:
            readings, _, spec = training_history(store, augment=augment, seed=seed,
                                                 library_assets=library_assets,
                                                 library_hours=library_hours,
                                                 history_hours=history_hours or None,
                                                 kind=kind, settings=settings)
        if kind.name != "pump":
            classes = None  # another kind's stored labels name its own classes
        source = str(paths["db_path"])
    if spec:
        say(f"added a simulated fault library of {len(spec['assets'])} pumps × "
            f"{spec['hours']:g} h (seed {spec['seed']}, --augment {augment})")
    elif augment != "never":
        say("no simulated pumps added (the library is opt-in for real equipment: --augment always)")
    extra_args = {} if classes == "default" else {"classes": None}
    if decision_weights not in ("auto", *DECISION_WEIGHTS):
        raise ValueError(f"decision weights: expected auto, dev or none, got {decision_weights!r}")
    if decision_weights == "auto":
        fits = dev_fleets_unfit(kind, feature_spec, None if classes is None else CLASSES) is None
        decision_weights = "dev" if spec and fits else "none"
    cards = train_models(readings, paths["models_dir"], kinds=tuple(kinds), seed=seed,
                         max_train_rows=max_train_rows, source=source, augmentation=spec,
                         class_weight=class_weight, library_mode=augment, spec=feature_spec,
                         asset_kind=kind, decision_weights=decision_weights, progress=say,
                         **extra_args)
    return {
        "models_dir": str(paths["models_dir"]),
        "asset_kind": kind.name,
        "signals": next(iter(cards.values()))["signals"] if cards else None,
        "model_files": {k: str(model_path(paths["models_dir"], k, kind.name)) for k in cards},
        "ignored_columns": list(ignored),
        "readings": int(len(readings)),
        "augmented": spec is not None,
        "macro_f1_held_out": {k: c["metrics"]["held_out"]["macro_f1"] for k, c in cards.items()},
        "training_seconds": {k: c["training_seconds"] for k, c in cards.items()},
        "train_rows": {k: c["training_data"]["rows_used"] for k, c in cards.items()},
        "test_assets": next(iter(cards.values()))["split"]["test_assets"] if cards else [],
        "classes": {k: c["classes"] for k, c in cards.items()},
        "decision_weights": {k: c["decision"] for k, c in cards.items()},
        "seconds": round(time.perf_counter() - started, 2),
        "cards": cards,
    }


def evaluate(db_path: str | None = None, models_dir: str | None = None,
             reports_dir: str | None = None, *, strict: bool = False, progress=None,
             random_seeds=None, random_assets: int = 6, random_hours: float = 48.0,
             forecast_seeds=None, forecast_speeds=(1.0, 2.0), forecast_assets: int = 6,
             forecast_hours: float = 24.0) -> dict:
    """Evaluate the saved models and the forecasts; writes ``<reports>/evaluation.json``.

    ``random_seeds`` / ``forecast_seeds``: ``None`` = the full defaults, ``()`` = skip that part.
    The fault-model alarm settings come from the settings file's ``[fault_model]``.
    """
    from twinlib.config import get_settings
    from twinlib.models.alarm_rule import FaultRuleSettings
    from twinlib.models.evaluate import evaluate_models

    paths = resolve_paths(db_path, models_dir, reports_dir)
    settings = get_settings(db_path=str(paths["db_path"]))
    rule_settings = FaultRuleSettings.from_settings(settings.file)
    with _open(paths["db_path"]) as store:
        report = evaluate_models(store, paths["models_dir"], thresholds=settings.thresholds,
                                 strict=strict, progress=progress, random_seeds=random_seeds,
                                 random_assets=random_assets, random_hours=random_hours,
                                 forecast_seeds=forecast_seeds, forecast_speeds=forecast_speeds,
                                 forecast_assets=forecast_assets, forecast_hours=forecast_hours,
                                 rule_settings=rule_settings, settings_file=settings.file)
    report["path"] = str(write_figures(paths["reports_dir"], "evaluation", report))
    _cards_record(paths["models_dir"], report)
    return report


def evaluate_own(db_path: str | None = None, reports_dir: str | None = None, *,
                 asset_kind: str = "pump", history=None, label_column: str = "label",
                 models=("rf", "xgb"), folds: int = 5, seed: int = 0, class_weight="balanced",
                 max_train_rows: int = 60_000, progress=None) -> dict:
    """Grouped cross-validation of the fault models on a kind's own labelled history.

    ``history`` (CSV paths) or, without it, the stored assets of ``asset_kind``. Assets are held
    out whole (one asset: blocks of time), see
    :func:`twinlib.models.cv_eval.evaluate_own_history`. The report carries the same headline
    fields as :func:`evaluate` (``macro_f1_random_mean`` … are then over the folds; ``protocol``
    says so) and is written to ``<reports>/evaluation.<kind>.json``.
    """
    from datetime import datetime, timezone

    from twinlib.config import get_settings
    from twinlib.detect.fault_model import operating_model
    from twinlib.models.alarm_rule import FaultRuleSettings
    from twinlib.models.cv_eval import evaluate_own_history
    from twinlib.models.evaluate import _targets
    from twinlib.models.random_eval import TARGETS
    from twinlib.models.train import spec_for_kind, training_history

    paths = resolve_paths(db_path=db_path, reports_dir=reports_dir)
    settings = get_settings(db_path=str(paths["db_path"]))
    kind = settings.kind(asset_kind or "pump")
    spec = spec_for_kind(kind)
    if history:
        readings = read_labelled_history(history, label_column, spec.sensors, kind)
        source = ", ".join(str(h) for h in ([history] if isinstance(history, (str, os.PathLike))
                                            else history))
    else:
        if label_column != "label":
            raise ValueError("--label-column names a column of --history files (the store keeps "
                             "one label column)")
        with _open(paths["db_path"]) as store:
            readings, _, _ = training_history(store, augment="never", history_hours=None,
                                              kind=kind, settings=settings)
        source = str(paths["db_path"])
    cv = evaluate_own_history(readings, kind, models=tuple(models), folds=folds, seed=seed,
                              spec=spec, class_weight=class_weight,
                              max_train_rows=max_train_rows,
                              rule_settings=FaultRuleSettings.from_settings(settings.file),
                              progress=progress)
    best, why = operating_model(cv["models"], settings.file)
    r = cv["models"][best]
    by_kind = r["alarms"]["by_kind"]
    report = {"generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
              "protocol": "grouped_cv", "asset_kind": kind.name, "source": source,
              "readings": int(len(readings)), "cross_validation": cv,
              "macro_f1": {k: v["macro_f1"]["mean"] for k, v in cv["models"].items()},
              "operating_model": best, "operating_model_reason": why,
              "macro_f1_random_mean": r["macro_f1"]["mean"],
              "macro_f1_random_std": r["macro_f1"]["std"],
              "macro_f1_random_worst": r["macro_f1"]["worst"],
              "min_class_recall": r["min_class_recall"],
              "false_alarms_per_pump_day": r["alarms"]["false_alarms_per_pump_day"],
              "median_lead_min": {k: v["median_lead_min"] for k, v in by_kind.items()
                                  if v["median_lead_min"] is not None},
              "leak_detected_15min_share": by_kind.get("leak", {}).get("detected_within_15min"),
              "forecast_coverage_by_lead": {}, "forecast_rate_by_lead": {}}
    report["targets"] = _targets(report, TARGETS)
    report["path"] = str(write_figures(paths["reports_dir"], f"evaluation.{kind.name}", report))
    return report


def _cards_record(models_dir, report: dict) -> None:
    """Put each model's random-schedule figures and the targets on its model card."""
    from twinlib.models.cards import record_evaluation
    from twinlib.models.train import model_path

    random = report.get("random")
    if not random:
        return
    for kind, r in random["models"].items():
        record_evaluation(model_path(models_dir, kind), jsonable({
            "generated_at": report["generated_at"],
            "random_schedule": {"seeds": random["seeds"], "assets": random["assets"],
                                "hours": random["hours"], "alarm_settings": random["settings"],
                                "macro_f1": r["macro_f1"], "recall": r["recall"],
                                "min_class_recall": r["min_class_recall"],
                                "false_alarms_per_pump_day": r["alarms"]["false_alarms_per_pump_day"],
                                "median_lead_min": {k: v["median_lead_min"]
                                                    for k, v in r["alarms"]["by_kind"].items()},
                                "reliability_ece": (r.get("reliability") or {}).get("ece")},
            "rules_baseline_macro_f1": random["rules"]["macro_f1"]["mean"],
            "operating_model": report.get("operating_model"),
            "forecast_coverage_by_lead": report.get("forecast_coverage_by_lead"),
            "targets": report.get("targets"),
        }))


def explore_asset(db_path: str | None = None, asset: str = "", *, hours: float = 24.0,
                  bucket_s: int = 300) -> dict:
    """History of one asset for exploration: downsampled sensors, alarms, faults, forecasts.

    ``asset`` ``""`` picks the first asset; ``hours`` is the span before its newest reading.
    """
    from twinlib.config import get_settings
    from twinlib.models.forecast import forecast_asset

    path = resolve_paths(db_path=db_path)["db_path"]
    with _open(path) as store:
        assets = store.assets()
        if not assets:
            raise ValueError(f"{path}: no assets stored; run the 01_generate_data notebook first")
        known = [a["asset_id"] for a in assets]
        asset = asset or known[0]
        if asset not in known:
            raise ValueError(f"unknown asset {asset!r}; stored assets: {', '.join(known)}")
        end = store.newest_ts(asset)
        if end is None:
            raise ValueError(f"asset {asset!r} has no readings")
        start = end - int(hours * 3_600_000)
        history = store.downsample(bucket_s, start=start, end=end, asset=asset)
        alerts = store.list_alerts(asset=asset, limit=10_000)
        events = store.fault_events(asset)
        thresholds = get_settings(db_path=str(path)).thresholds(asset)
        forecasts = forecast_asset(store, asset, now_ms=end, thresholds=thresholds)
    events = events[(events["end"].isna()) | (events["end"] >= pd.Timestamp(start, unit="ms"))]
    return {"asset": asset, "assets": assets, "start_ms": int(start), "end_ms": int(end),
            "history": history, "alerts": alerts, "events": events, "thresholds": thresholds,
            "forecasts": forecasts}


def jsonable(value):
    """JSON-ready copy of ``value``: NaN/NaT become null, numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return jsonable(value.to_dict("records"))
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if value is pd.NaT:
        return None
    return str(value)


def write_figures(reports_dir: str | os.PathLike | None, name: str, figures: dict) -> Path:
    """Write a notebook's key figures to ``<reports_dir>/<name>.json``; returns the path."""
    path = resolve_paths(reports_dir=str(reports_dir) if reports_dir else None)["reports_dir"]
    path.mkdir(parents=True, exist_ok=True)
    out = path / f"{name}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(jsonable(figures), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, out)
    return out
