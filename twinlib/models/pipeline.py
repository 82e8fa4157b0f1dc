"""The steps the notebooks and ``twin train`` / ``twin evaluate`` run: one function per step.

Each takes paths (``""`` or ``None`` means "the setting": ``TWIN_DB``, ``TWIN_MODELS_DIR``,
``TWIN_REPORTS_DIR``), does one thing, and returns a small JSON-ready summary, so a notebook
stays a list of calls and the command line does the very same work without Jupyter.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

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


def train(db_path: str | None = None, models_dir: str | None = None, *, seed: int = 0,
          max_train_rows: int = 30_000, augment: str = "auto", library_assets: int = 8,
          library_hours: float = 24.0, history_hours: float | None = 48.0, kinds=("rf", "xgb"),
          progress=None) -> dict:
    """Train both classifiers on the stored history; save models + cards. Returns a summary."""
    from twinlib.models.train import train_models, training_history

    paths = resolve_paths(db_path=db_path, models_dir=models_dir)
    say = progress or (lambda msg: None)
    started = time.perf_counter()
    with _open(paths["db_path"]) as store:
        readings, _, spec = training_history(store, augment=augment, seed=seed,
                                             library_assets=library_assets,
                                             library_hours=library_hours,
                                             history_hours=history_hours or None)
    if spec:
        say(f"stored history lacks fault classes: added a simulated fault library of "
            f"{len(spec['assets'])} pumps × {spec['hours']:g} h (seed {spec['seed']})")
    cards = train_models(readings, paths["models_dir"], kinds=tuple(kinds), seed=seed,
                         max_train_rows=max_train_rows, source=str(paths["db_path"]),
                         augmentation=spec, progress=say)
    return {
        "models_dir": str(paths["models_dir"]),
        "readings": int(len(readings)),
        "augmented": spec is not None,
        "macro_f1_held_out": {k: c["metrics"]["held_out"]["macro_f1"] for k, c in cards.items()},
        "training_seconds": {k: c["training_seconds"] for k, c in cards.items()},
        "train_rows": {k: c["training_data"]["rows_used"] for k, c in cards.items()},
        "test_assets": next(iter(cards.values()))["split"]["test_assets"] if cards else [],
        "classes": {k: c["classes"] for k, c in cards.items()},
        "seconds": round(time.perf_counter() - started, 2),
        "cards": cards,
    }


def evaluate(db_path: str | None = None, models_dir: str | None = None,
             reports_dir: str | None = None, *, strict: bool = False, progress=None) -> dict:
    """Evaluate the saved models and the forecasts; writes ``<reports>/evaluation.json``."""
    from twinlib.config import get_settings
    from twinlib.models.evaluate import evaluate_models

    paths = resolve_paths(db_path, models_dir, reports_dir)
    settings = get_settings(db_path=str(paths["db_path"]))
    with _open(paths["db_path"]) as store:
        report = evaluate_models(store, paths["models_dir"], thresholds=settings.thresholds,
                                 strict=strict, progress=progress)
    report["path"] = str(write_figures(paths["reports_dir"], "evaluation", report))
    return report


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
