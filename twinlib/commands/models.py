"""``twin train | evaluate | notebooks run``: fault models and the analysis notebooks."""
from __future__ import annotations

import argparse
import json
import sys

from ._common import CommandError, add_db_option

__all__ = ["register"]


def _add_paths(p: argparse.ArgumentParser, *, reports: bool = False) -> None:
    add_db_option(p)
    p.add_argument("--models-dir", metavar="DIR",
                   help="where model files and cards live (default: $TWIN_MODELS_DIR, else models)")
    if reports:
        p.add_argument("--reports-dir", metavar="DIR",
                       help="where reports go (default: $TWIN_REPORTS_DIR, else reports)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train the fault classifiers (RandomForest + XGBoost)",
                       description="Train fault_detection_rf.pkl and fault_detection_xgb.pkl on "
                       "the stored history, score them on held-out assets and times, and write "
                       "each beside its JSON model card. --kind K trains on the stored assets "
                       "of kind K, with features from K's signals, into "
                       "fault_detection_{rf,xgb}.K.pkl (the pump's files are left alone).")
    _add_paths(p)
    p.add_argument("--kind", default="pump", metavar="KIND",
                   help="asset kind: train on the stored assets of this kind (or --history), "
                        "features from its measured and state signals (default pump)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--max-rows", type=int, default=60_000,
                   help="cap on classifier training rows; features use every reading (default 60000)")
    p.add_argument("--augment", choices=("auto", "always", "never"), default="auto",
                   help="add a simulated fault library of pumps: auto = only when the stored "
                        "history is itself simulated pumps lacking a fault class (default; never "
                        "for other kinds); always = also with your own equipment's data (opt-in, "
                        "pump signals only, recorded on the model card)")
    p.add_argument("--history", metavar="CSV", nargs="+",
                   help="train on your own labelled history instead of the store: one or more "
                        "CSV files (timestamp or datetime, the kind's signals, a label column, "
                        "asset_id — else each file is one asset)")
    p.add_argument("--label-column", default="label",
                   help="the label column of --history (default label; 'healthy' = normal; a "
                        "0/1 column such as SKAB's anomaly: 0 = healthy, 1 = the column's name)")
    p.add_argument("--sensors", metavar="A,B,…",
                   help="build features from these of the kind's measured signals only "
                        "(default: all of them)")
    p.add_argument("--class-weight", default="balanced", metavar="balanced|none|CLASS=W,…",
                   help="class weights: balanced (inverse frequency, default), none, or extra "
                        "weights for rare faults on top of balanced, e.g. leak=3,blockage=2")
    p.add_argument("--history-hours", type=float, default=48.0,
                   help="train on the last H hours of stored history; 0 = all (default 48)")
    p.add_argument("--library-assets", type=int, default=32,
                   help="pumps in the simulated fault library (default 32)")
    p.add_argument("--library-hours", type=float, default=48.0,
                   help="minimum hours of the fault library; it spans the history (default 48)")
    p.add_argument("--models", default="rf,xgb", help="which models, comma-separated (default rf,xgb)")
    p.add_argument("--decision-weights", choices=("auto", "dev", "none"), default="auto",
                   help="per-class weights on the probabilities when a reading's class is called, "
                        "chosen on simulated development fleets (seeds 100-104): auto (default) "
                        "when simulated pumps are in the training data, dev always, none never")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--if-needed", action="store_true",
                   help="train only when a model is missing or was trained on other features "
                        "than this twinlib computes (after an upgrade); else say so and exit 0")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score the saved models held out, and the forecasts",
                       description="Verify and load the saved models, score them on the assets "
                       "and times they never saw, score time-to-threshold forecasts against "
                       "known failure times, and write <reports>/evaluation.json.")
    _add_paths(p, reports=True)
    p.add_argument("--strict", action="store_true",
                   help="refuse (not just warn about) models saved under other library versions")
    p.add_argument("--seeds", type=int, default=5,
                   help="random-schedule fleets to score on (seeds 200, 201, …; 0 skips; default 5)")
    p.add_argument("--random-assets", type=int, default=6,
                   help="pumps per random-schedule fleet (default 6)")
    p.add_argument("--random-hours", type=float, default=48.0,
                   help="hours per random-schedule fleet (default 48)")
    p.add_argument("--forecast-seeds", type=int, default=10,
                   help="seeds of the forecast study across speeds (300, 301, …; 0 skips; default 10)")
    p.add_argument("--forecast-assets", type=int, default=6,
                   help="pumps per forecast-study fleet (default 6)")
    p.add_argument("--forecast-hours", type=float, default=24.0,
                   help="hours per forecast-study fleet (default 24)")
    p.add_argument("--forecast-speeds", default="1,2",
                   help="degradation speeds of the forecast study, comma-separated (default 1,2)")
    p.add_argument("--kind", metavar="K",
                   help="evaluate by cross-validation grouped by asset on kind K's own labelled "
                        "history (--history files, else the stored assets of kind K) instead of "
                        "the saved pump models on simulated fleets")
    p.add_argument("--history", nargs="+", metavar="CSV",
                   help="labelled history files of --kind (as `twin train --history`)")
    p.add_argument("--label-column", default="label", metavar="C",
                   help="the label column of --history files (default label)")
    p.add_argument("--folds", type=int, default=5,
                   help="cross-validation folds with --kind (default 5; at most one per asset)")
    p.add_argument("--models", default="rf,xgb",
                   help="which models with --kind, comma-separated (default rf,xgb)")
    p.add_argument("--max-rows", type=int, default=60_000,
                   help="with --kind: training rows per fold's classifier (default 60000)")
    p.add_argument("--json", action="store_true",
                   help="print the report; the last line is one JSON object with every figure")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("notebooks", help="run the analysis notebooks (papermill)")
    p.set_defaults(func=lambda args, _p=p: _p.print_help() or 0)
    nsub = p.add_subparsers(dest="action", metavar="ACTION")
    r = nsub.add_parser("run", help="execute 01…04 in order on their own database and models",
                        description="Execute notebooks/01_generate_data … 04_explore_history with "
                        "papermill into <reports>/<run>/ (executed notebooks plus one JSON file "
                        "of key figures each). The notebooks never touch the live system by "
                        "default: 01 adds a simulated fleet to <reports>/<run>/twin.db and 02 "
                        "trains into <reports>/<run>/models/; the live database and models dir "
                        "(the settings', used by the monitor, API and dashboard) are left alone "
                        "unless you pass --live, or --db / --models-dir.")
    r.add_argument("--db", metavar="PATH", help="the notebooks' database (default: "
                   "<reports>/<run>/twin.db; with --live the settings': $TWIN_DB, else data/twin.db)")
    r.add_argument("--models-dir", metavar="DIR", help="where 02 writes the models (default: "
                   "<reports>/<run>/models; with --live the settings': $TWIN_MODELS_DIR, else models)")
    r.add_argument("--reports-dir", metavar="DIR",
                   help="where run directories go (default: $TWIN_REPORTS_DIR, else reports)")
    r.add_argument("--run", default="notebooks", metavar="NAME",
                   help="the run directory under the reports dir (default notebooks)")
    r.add_argument("--live", action="store_true",
                   help="work on the live system instead: 01 ADDS its simulated readings to the "
                        "settings' database ($TWIN_DB, else data/twin.db) and 02 OVERWRITES the "
                        "model files in the settings' models dir ($TWIN_MODELS_DIR, else models) "
                        "that `twin up`, the monitor and the API load")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="set a notebook parameter (repeatable), "
                   "e.g. -p hours 6 -p assets 4")
    r.add_argument("--only", action="append", metavar="NAME",
                   help="run only this notebook (repeatable), e.g. --only 04_explore_history")
    r.add_argument("--notebooks-dir", metavar="DIR", help="where the notebooks are "
                   "(default: the repository's notebooks/)")
    r.set_defaults(func=cmd_notebooks_run)


def _models(text: str) -> tuple[str, ...]:
    from ..models.classifiers import MODEL_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in MODEL_KINDS]
    if bad or not kinds:
        raise CommandError(f"--models: unknown {bad or text!r}; choose from rf, xgb", 2)
    return kinds


def _class_weight(text: str):
    if text in ("balanced", "none"):
        return text
    weights = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise CommandError(f"--class-weight: expected balanced, none or CLASS=W,…; got {text!r}", 2)
    return weights


def cmd_train(args) -> int:
    from ..store import StoreMissingError
    from ..workflows import pipeline

    say = (lambda msg: None) if args.json else (lambda msg: print(msg, file=sys.stderr))
    if args.if_needed:
        from ..models.train import models_to_train

        models_dir = pipeline.resolve_paths(models_dir=args.models_dir)["models_dir"]
        why = models_to_train(models_dir, _models(args.models), args.kind)
        if not why:
            print(f"models in {models_dir} are up to date for kind {args.kind}; nothing to train",
                  file=sys.stderr)
            return 0
        say("training: " + "; ".join(why))
    sensors = [s.strip() for s in args.sensors.split(",") if s.strip()] if args.sensors else None
    try:
        summary = pipeline.train(args.db, args.models_dir, seed=args.seed,
                                 max_train_rows=args.max_rows, augment=args.augment,
                                 library_assets=args.library_assets,
                                 library_hours=args.library_hours,
                                 history_hours=args.history_hours,
                                 kinds=_models(args.models), history=args.history,
                                 label_column=args.label_column,
                                 class_weight=_class_weight(args.class_weight),
                                 sensors=sensors, asset_kind=args.kind,
                                 decision_weights=args.decision_weights, progress=say)
    except StoreMissingError as exc:
        raise CommandError(f"{exc} (run `twin generate`, `twin init-db` and `twin store` first)") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    summary.pop("cards")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for kind, f1 in summary["macro_f1_held_out"].items():
            print(f"{kind}: held-out macro-F1 {f1:.3f}, trained in "
                  f"{summary['training_seconds'][kind]:.1f} s on {summary['train_rows'][kind]:,} rows")
            decision = summary["decision_weights"][kind]
            if decision.get("method") == "development_fleets":
                changed = {c: w for c, w in decision["weights"].items() if w != 1.0}
                print(f"    decision weights (dev fleets {decision['seeds'][0]}–"
                      f"{decision['seeds'][-1]}): "
                      + (", ".join(f"{c} ×{w:g}" for c, w in changed.items()) or "all 1")
                      + f"; lowest class recall there {decision['before']['min_class_recall']:.3f}"
                        f" → {decision['after']['min_class_recall']:.3f}")
        print(f"kind {summary['asset_kind']}: models and cards written to "
              + ", ".join(summary["model_files"].values()))
    return 0


def cmd_evaluate(args) -> int:
    from ..models.cards import ModelCardError
    from ..workflows import pipeline

    say = (lambda msg: None) if args.json else (lambda msg: print(msg, file=sys.stderr))
    if args.kind or args.history:
        return _evaluate_own(args, say)
    if args.label_column != "label":
        raise CommandError("--label-column goes with --kind K --history CSV", 2)
    if args.seeds < 0 or args.forecast_seeds < 0:
        raise CommandError("--seeds and --forecast-seeds must not be negative", 2)
    try:
        speeds = tuple(float(x) for x in args.forecast_speeds.split(",") if x.strip())
    except ValueError:
        raise CommandError(f"--forecast-speeds: not numbers: {args.forecast_speeds!r}", 2) from None
    if not speeds or min(speeds) <= 0:
        raise CommandError("--forecast-speeds: give positive speeds, e.g. 1,2", 2)
    try:
        report = pipeline.evaluate(args.db, args.models_dir, args.reports_dir,
                                   strict=args.strict, progress=say,
                                   random_seeds=tuple(range(200, 200 + args.seeds)),
                                   random_assets=args.random_assets, random_hours=args.random_hours,
                                   forecast_seeds=tuple(range(300, 300 + args.forecast_seeds)),
                                   forecast_speeds=speeds, forecast_assets=args.forecast_assets,
                                   forecast_hours=args.forecast_hours)
    except ModelCardError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        # one line: a script reads the last line of the output
        print(json.dumps(pipeline.jsonable(report), separators=(",", ":")))
        return 0
    for kind, scores in report["models"].items():
        print(f"{kind}: macro-F1 {scores['macro_f1']:.3f}, accuracy {scores['accuracy']:.3f} on "
              f"{scores['n']:,} held-out readings of {', '.join(scores['split']['test_assets'])}")
        for cls, s in scores["per_class"].items():
            print(f"    {cls:16s} precision {s['precision']:.2f}  recall {s['recall']:.2f}  "
                  f"support {s['support']}")
    fc = report["forecast"]
    print(f"forecast: {fc['episodes_with_failure']} failures, MAE "
          + ("n/a" if fc["mae_h"] is None else f"{fc['mae_h']:.2f} h")
          + f"; false forecasts {fc['false_forecasts']}/{fc['healthy_checks']} healthy checks")
    for row in fc["per_lead"]:
        if row["episodes"]:
            mae = "n/a" if row["mae_h"] is None else f"{row['mae_h']:.2f} h"
            print(f"    lead {row['lead_h']:4.2f} h: forecast {row['forecasts']}/{row['episodes']}, "
                  f"MAE {mae}")
    _print_random(report)
    print(f"report written to {report['path']}")
    return 0


def _evaluate_own(args, say) -> int:
    from ..workflows import pipeline

    if args.folds < 2:
        raise CommandError("--folds must be at least 2", 2)
    try:
        report = pipeline.evaluate_own(args.db, args.reports_dir, asset_kind=args.kind or "pump",
                                       history=args.history, label_column=args.label_column,
                                       models=_models(args.models), folds=args.folds,
                                       max_train_rows=args.max_rows, progress=say)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(pipeline.jsonable(report), separators=(",", ":")))
        return 0
    cv = report["cross_validation"]
    print(f"kind {report['asset_kind']}: cross-validation grouped by {cv['group_by']} "
          f"({len(cv['folds'])} folds; alarm level {cv['settings']['level']:g}, hold "
          f"{cv['settings']['hold_s']:g} s):")
    print(f"    {'':8s} {'macro-F1 mean ± sd':>20s} {'worst':>6s} {'min recall':>10s} "
          f"{'false/asset-day':>15s} {'detected':>8s}")
    for name, r in cv["models"].items():
        f1 = r["macro_f1"]
        print(f"    {name:8s} {_fmt(f1['mean']):>12s} ± {_fmt(f1['std']):5s} "
              f"{_fmt(f1['worst']):>6s} {_fmt(r['min_class_recall'], '.2f'):>10s} "
              f"{_fmt(r['alarms']['false_alarms_per_pump_day'], '.2f'):>15s} "
              f"{_fmt(r['alarms']['detection_rate'], '.2f'):>8s}")
        for cls, v in r["recall"].items():
            print(f"        recall {cls:16s} {v:.2f}")
    print(f"report written to {report['path']}")
    return 0


def _fmt(v, spec=".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def _print_random(report: dict) -> None:
    rnd = report.get("random")
    if rnd:
        print(f"random-schedule fleets (seeds {rnd['seeds']}, {rnd['assets']} pumps × "
              f"{rnd['hours']:g} h; alarm level {rnd['settings']['level']:g}, hold "
              f"{rnd['settings']['hold_s']:g} s):")
        rows = [*rnd["models"].items(), ("rules", rnd["rules"])]
        print(f"    {'':8s} {'macro-F1 mean ± sd':>20s} {'worst':>6s} {'min recall':>10s} "
              f"{'false/pump-day':>14s} {'detected':>8s}")
        for name, r in rows:
            f1 = r["macro_f1"]
            print(f"    {name:8s} {_fmt(f1['mean']):>12s} ± {_fmt(f1['std']):5s} "
                  f"{_fmt(f1['worst']):>6s} {_fmt(r['min_class_recall'], '.2f'):>10s} "
                  f"{_fmt(r['alarms']['false_alarms_per_pump_day'], '.2f'):>14s} "
                  f"{_fmt(r['alarms']['detection_rate'], '.2f'):>8s}")
        print(f"    median lead before the threshold alarm ({report['operating_model']}): "
              + ", ".join(f"{k} {v:.0f} min" for k, v in report["median_lead_min"].items()))
    cov = report.get("forecast_coverage_by_lead") or {}
    if cov:
        print("forecast 80 % range coverage by lead: "
              + ", ".join(f"{k} {_fmt(v, '.2f')}" for k, v in cov.items()))
    for name, t in (report.get("targets") or {}).items():
        mark = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        print(f"    target {name}: {t['value'] if not isinstance(t['value'], float) else round(t['value'], 3)}"
              f" ({t['target']}) {mark}")


def cmd_notebooks_run(args) -> int:
    from ..workflows.notebooks import NOTEBOOKS, run_notebooks

    names = args.only or NOTEBOOKS
    try:
        results = run_notebooks(dict(args.parameter), reports_dir=args.reports_dir,
                                db_path=args.db, models_dir=args.models_dir,
                                source_dir=args.notebooks_dir, names=names, run=args.run,
                                live=args.live, progress=lambda msg: print(msg, file=sys.stderr))
    except Exception as exc:  # papermill's execution error carries the failing cell
        if type(exc).__name__ == "PapermillExecutionError":
            raise CommandError(f"notebook failed: {exc}") from exc
        raise
    for r in results:
        print(f"{r['notebook']}: {r['seconds']:.1f} s → {r['output']} (figures: {r['figures_path']})")
    return 0
