"""``twin train | evaluate | notebooks run``: fault models and the analysis notebooks."""
from __future__ import annotations

import argparse
import json
import sys

from ..cli import CommandError
from ._common import add_db_option

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
                       "each beside its JSON model card.")
    _add_paths(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--max-rows", type=int, default=30_000,
                   help="cap on classifier training rows; features use every reading (default 30000)")
    p.add_argument("--augment", choices=("auto", "always", "never"), default="auto",
                   help="add a simulated fault library: auto = when the history lacks a fault "
                        "class (default)")
    p.add_argument("--history-hours", type=float, default=48.0,
                   help="train on the last H hours of stored history; 0 = all (default 48)")
    p.add_argument("--library-assets", type=int, default=8,
                   help="pumps in the simulated fault library (default 8)")
    p.add_argument("--library-hours", type=float, default=24.0,
                   help="minimum hours of the fault library; it spans the history (default 24)")
    p.add_argument("--models", default="rf,xgb", help="which models, comma-separated (default rf,xgb)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score the saved models held out, and the forecasts",
                       description="Verify and load the saved models, score them on the assets "
                       "and times they never saw, score time-to-threshold forecasts against "
                       "known failure times, and write <reports>/evaluation.json.")
    _add_paths(p, reports=True)
    p.add_argument("--strict", action="store_true",
                   help="refuse (not just warn about) models saved under other library versions")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("notebooks", help="run the analysis notebooks (papermill)")
    p.set_defaults(func=lambda args, _p=p: _p.print_help() or 0)
    nsub = p.add_subparsers(dest="action", metavar="ACTION")
    r = nsub.add_parser("run", help="execute 01…04 in order into the reports dir",
                        description="Execute notebooks/01_generate_data … 04_explore_history with "
                        "papermill into the reports dir (executed notebooks plus one JSON file "
                        "of key figures each).")
    _add_paths(r, reports=True)
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


def cmd_train(args) -> int:
    from ..models import pipeline
    from ..store import StoreMissingError

    say = (lambda msg: None) if args.json else (lambda msg: print(msg, file=sys.stderr))
    try:
        summary = pipeline.train(args.db, args.models_dir, seed=args.seed,
                                 max_train_rows=args.max_rows, augment=args.augment,
                                 library_assets=args.library_assets,
                                 library_hours=args.library_hours,
                                 history_hours=args.history_hours,
                                 kinds=_models(args.models), progress=say)
    except StoreMissingError as exc:
        raise CommandError(f"{exc} (run `twin generate`, `twin init-db` and `twin store` first)")
    summary.pop("cards")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for kind, f1 in summary["macro_f1_held_out"].items():
            print(f"{kind}: held-out macro-F1 {f1:.3f}, trained in "
                  f"{summary['training_seconds'][kind]:.1f} s on {summary['train_rows'][kind]:,} rows")
        print(f"models and cards written to {summary['models_dir']}")
    return 0


def cmd_evaluate(args) -> int:
    from ..models import pipeline
    from ..models.cards import ModelCardError

    say = (lambda msg: None) if args.json else (lambda msg: print(msg, file=sys.stderr))
    try:
        report = pipeline.evaluate(args.db, args.models_dir, args.reports_dir,
                                   strict=args.strict, progress=say)
    except ModelCardError as exc:
        raise CommandError(str(exc))
    if args.json:
        print(json.dumps(pipeline.jsonable(report), indent=2))
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
    print(f"report written to {report['path']}")
    return 0


def cmd_notebooks_run(args) -> int:
    from ..models.notebooks import NOTEBOOKS, run_notebooks

    names = args.only or NOTEBOOKS
    try:
        results = run_notebooks(dict(args.parameter), reports_dir=args.reports_dir,
                                db_path=args.db, models_dir=args.models_dir,
                                source_dir=args.notebooks_dir, names=names,
                                progress=lambda msg: print(msg, file=sys.stderr))
    except Exception as exc:  # papermill's execution error carries the failing cell
        if type(exc).__name__ == "PapermillExecutionError":
            raise CommandError(f"notebook failed: {exc}")
        raise
    for r in results:
        print(f"{r['notebook']}: {r['seconds']:.1f} s → {r['output']} (figures: {r['figures_path']})")
    return 0
