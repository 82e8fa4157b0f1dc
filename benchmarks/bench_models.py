"""Fault models: training time, per-reading inference time, notebook pipeline wall time.

Also the cost of one ``forecast_asset`` call (per asset, per API request or dashboard tick).

``run(quick=False)`` measures on the default data (what ``twin generate`` makes: 4 pumps, 24 h at
1 s, seed 42, plus the simulated fault library ``twin train`` adds) — training as ``twin train``
in its own process, for its peak RSS and CPU seconds beside the wall time — and runs the four notebooks
with the full-size parameters of ``twin train`` / ``twin evaluate`` — notebook 03 is the full
evaluation: 5 random-schedule fleets
(seeds 200–204, 6 pumps × 48 h) and the forecast study (seeds 300–309, speeds 1× and 2×). Its
headline figures and the issue-16 targets (met or missed) are reported under ``quality`` (the
forecasts also per speed), and the forecast calibration's leave-one-seed-out figure (seeds
100–115) under ``forecast_cross_validation``.
``quick=True`` shrinks everything for a smoke run. All files go to a temporary directory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run"]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2]


def _twin_train(db: Path, models_dir: Path, library_hours: float) -> dict:
    """`twin train` in a fresh process: wall and CPU seconds, peak RSS (kernel's figure)."""
    env = dict(os.environ, TWIN_SETTINGS=str(db.with_suffix(".none.toml")))
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "twinlib", "train", "--db", str(db),
                             "--models-dir", str(models_dir), "--library-hours",
                             f"{library_hours:g}", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"twin train failed: {text.decode(errors='replace')[-500:]}")
    summary = json.loads(text)
    return {"readings": summary["readings"], "wall_s": round(wall, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "load_avg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def run(quick: bool = False) -> dict:
    from twinlib.ingest import ingest_frame
    from twinlib.models.cards import load_model, read_card
    from twinlib.models.forecast import forecast_asset
    from twinlib.models.train import model_path, training_history
    from twinlib.simulate import simulate_fleet
    from twinlib.store import open_store
    from twinlib.workflows.notebooks import run_notebooks

    hours = 4.0 if quick else 24.0
    library_hours = 4.0 if quick else 24.0
    out: dict = {"data": {"assets": 4, "hours": hours, "freq_s": 1.0, "seed": 42}}
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        tmp = Path(tmp)
        fleet = simulate_fleet(assets=4, hours=hours, seed=42, start="2026-02-10 00:00:00")
        with open_store(tmp / "twin.db", create=True) as store:
            ingest_frame(store, fleet.readings, source="simulator")
            store.upsert_assets(fleet.assets)
            store.load_fault_events(fleet.events)
            started = time.perf_counter()
            readings, _, spec = training_history(store, seed=0, library_hours=library_hours)
            load_s = time.perf_counter() - started
            # What the API and each dashboard tick pay per asset (no model involved).
            forecast_s = _median_time(lambda: forecast_asset(store, "pump-01"), 20)
        out["forecast_asset_ms"] = round(forecast_s * 1e3, 2)
        del readings
        run = _twin_train(tmp / "twin.db", tmp / "models", library_hours)
        cards = {k: read_card(model_path(tmp / "models", k)) for k in ("rf", "xgb")}
        out["training"] = {
            "readings": run.pop("readings"),
            "library_assets": len(spec["assets"]) if spec else 0,
            "load_and_library_s": round(load_s, 2),
            # `twin train` in its own process, history and library included: wall and CPU
            # seconds, the kernel's peak RSS, the load average around it
            "twin_train": run,
            "per_model_s": {k: c["training_seconds"] for k, c in cards.items()},
            "feature_s": next(iter(cards.values()))["feature_seconds"],
            "rows_used": {k: c["training_data"]["rows_used"] for k, c in cards.items()},
            "macro_f1_held_out": {k: round(c["metrics"]["held_out"]["macro_f1"], 4)
                                  for k, c in cards.items()},
        }

        batch = fleet.readings.iloc[: (20_000 if quick else 100_000)]
        live = fleet.readings[fleet.readings["asset_id"] == "pump-01"].iloc[-1800:]
        inference = {}
        for kind in cards:
            model, _ = load_model(model_path(tmp / "models", kind))
            X = model.features(batch)
            features_s = _median_time(lambda: model.features(batch), 3)
            predict_s = _median_time(lambda: model.predict_features(X), 3)
            # Live use: classify an asset's newest reading from its last 30 min of history.
            latest_s = _median_time(lambda: model.predict(live)[-1], 5)
            inference[kind] = {
                "batch_readings": int(len(batch)),
                "features_us_per_reading": round(features_s / len(batch) * 1e6, 2),
                "predict_us_per_reading": round(predict_s / len(batch) * 1e6, 2),
                "total_us_per_reading": round((features_s + predict_s) / len(batch) * 1e6, 2),
                "latest_reading_ms": round(latest_s * 1e3, 2),
            }
        out["inference"] = inference

        params = ({"assets": 3, "hours": 3, "fault_rate": 8, "library_assets": 3,
                   "library_hours": 4, "max_train_rows": 5000, "random_seeds": 1,
                   "random_assets": 2, "random_hours": 4, "forecast_seeds": 1,
                   "forecast_assets": 2, "forecast_hours": 6, "decision_weights": "none"} if quick else
                  # the notebooks' defaults are sized for CI; the bench runs the full size
                  {"library_assets": 32, "library_hours": 48, "max_train_rows": 60000,
                   "random_assets": 6, "random_hours": 48, "forecast_assets": 6,
                   "forecast_hours": 24})
        started = time.perf_counter()
        results = run_notebooks(params, reports_dir=tmp / "reports", db_path=tmp / "nb.db",
                                models_dir=tmp / "nb-models")
        out["notebooks"] = {
            "parameters": "tiny (quick)" if quick else "defaults",
            "wall_s": round(time.perf_counter() - started, 2),
            "per_notebook_s": {r["notebook"]: r["seconds"] for r in results},
            "macro_f1": results[2]["figures"]["macro_f1"],
        }
        fig = results[2]["figures"]
        out["quality"] = {k: fig.get(k) for k in (
            "operating_model", "macro_f1_random_mean", "macro_f1_random_std",
            "macro_f1_random_worst", "min_class_recall", "false_alarms_per_pump_day",
            "median_lead_min", "leak_detected_15min_share", "forecast_coverage_by_lead",
            "forecast_rate_by_lead", "forecast_false_rate", "calibration_ece", "targets")}
        out["quality"].update(_forecast_by_speed(tmp / "reports" / "evaluation.json"))
        if not quick:
            # The forecast calibration's own cross-validated figure (calibration seeds only).
            from twinlib.models.evaluate import cross_validate_forecast

            cpu, wall = time.process_time(), time.perf_counter()
            cv = cross_validate_forecast()
            out["forecast_cross_validation"] = {
                "seeds": cv["seeds"], "speeds": cv["speeds"],
                "coverage_by_speed": {sp: {k: c["coverage"] for k, c in cells.items()}
                                      for sp, cells in cv["by_speed"].items()},
                "forecast_rate_by_speed": {sp: {k: c["forecast_rate"] for k, c in cells.items()}
                                           for sp, cells in cv["by_speed"].items()},
                "worst_bin_coverage": cv["worst_bin_coverage"],
                "best_bin_coverage": cv["best_bin_coverage"],
                "cpu_s": round(time.process_time() - cpu, 1),
                "wall_s": round(time.perf_counter() - wall, 1),
            }
    out["cpu_count"] = os.cpu_count()
    return out


def _forecast_by_speed(report_path: Path) -> dict:
    """Per-speed forecast coverage and forecast rate from ``twin evaluate``'s report, if any."""
    import json

    try:
        study = json.loads(report_path.read_text()).get("forecast_study") or {}
    except (OSError, ValueError):
        return {}
    return {"forecast_coverage_by_speed": study.get("coverage_by_speed"),
            "forecast_rate_by_speed": study.get("forecast_rate_by_speed")}


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
