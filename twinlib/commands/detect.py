"""``twin detect | skab``: run the alarm engine, score on SKAB (``twin alarms``: commands.alarms).

* ``twin detect`` — run the alarm engine over every reading not yet checked (the whole history
  the first time; the same engine the live monitor runs) and print the alarm events.
  ``--evaluate`` instead simulates a labelled fleet and prints rules and detectors side by side.
* ``twin alarms`` — alarm management: see :mod:`twinlib.commands.alarms`.
* ``twin skab --data DIR [--detector NAME]… [--folds loo|K]`` — the SKAB benchmark protocol,
  in-sample and cross-validated, with the sensitivity of the threshold factor; a table, then one
  line of JSON.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..store import open_store
from ..timeutil import format_ts, now_ms
from ._common import CommandError, add_db_option, settings_from

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("detect", help="run the alarm engine over new readings and print the alarms",
                       description="Check every reading stored since the last run against the "
                                   "alarm rules of each asset's kind (thresholds with "
                                   "warning/critical bands, hold time and deadband, low side, "
                                   "flat-line, impossible values, stale data, the twin residual "
                                   "and, when enabled, the fault model); alarms go to the "
                                   "alerts table.")
    add_db_option(p)
    p.add_argument("--stale-now", action="store_true",
                   help="also raise stale-data alarms for assets silent until now (wall clock)")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    p.add_argument("--evaluate", action="store_true",
                   help="score rules and detectors side by side on a simulated labelled fleet "
                        "(does not touch the database)")
    p.add_argument("--assets", type=int, default=4, help="--evaluate: pumps (default 4)")
    p.add_argument("--hours", type=float, default=72.0, help="--evaluate: hours (default 72)")
    p.add_argument("--train-hours", type=float, default=24.0,
                   help="--evaluate: hours per asset to fit detectors on (default 24)")
    p.add_argument("--fault-rate", type=float, default=2.0,
                   help="--evaluate: fault episodes per asset per day (default 2)")
    p.add_argument("--seed", type=int, default=0, help="--evaluate: random seed (default 0)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("skab", help="score detectors on the SKAB pump benchmark",
                       description="Runs SKAB's published protocol over every labelled SKAB CSV "
                                   "under DIR: first 400 rows of each file train, pooled "
                                   "confusion matrix, F1/FAR/MAR and NAB changepoint scores. "
                                   "Prints a table beside the published leaderboard, then one "
                                   "JSON line (f1, far, mar as fractions) for the chosen method.")
    p.add_argument("--data", required=True, metavar="DIR", help="folder with SKAB CSV files")
    p.add_argument("--detector", action="append", metavar="NAME", default=None,
                   help="method to score (repeatable; default: all). The first one named is the "
                        "one in the JSON line (default: mset). Names: mset, ltwin, ensemble, "
                        "twin-residual, pca-smoothed, pca, zscore, iforest")
    p.add_argument("--folds", metavar="loo|K", default=None,
                   help="cross-validate over files: 'loo' leaves one file out, an integer K uses "
                        "K groups of files; the threshold factor and the method's options (mset/"
                        "ltwin/ensemble: score persistence, high-pass speed) are chosen on the "
                        "training folds only and the held-out folds are pooled")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_skab)


def _print_event(e, as_json: bool) -> None:
    if as_json:
        print(json.dumps(e.as_dict(), ensure_ascii=False))
    else:
        print(f"{format_ts(e.ts)}  {e.kind:<9} #{e.alert_id:<5} {e.asset_id:<12} {e.severity:<8} "
              f"{e.message}")


def cmd_detect(args: argparse.Namespace) -> int:
    if args.evaluate:
        return _evaluate(args)
    from ..detect import AlarmEngine
    from ..detect.fault_model import fault_model_rules

    settings = settings_from(args)
    try:
        extra = fault_model_rules(settings)
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    store = open_store(settings.db_path)
    try:
        # each asset's rules from its kind (and the settings file), as the live monitor does;
        # by shards when monitors detect this database so (several monitors on PostgreSQL)
        if store.get_meta("detect.shards"):
            from ..detect.sharded import ShardedEngine
            engine = ShardedEngine(store, settings=settings, extra_for_kind=extra)
        else:
            engine = AlarmEngine(store, settings=settings, extra_for_kind=extra)
        # a change of thresholds / rules since the last run goes to the alarm audit log
        from ..alarms import resolve_user
        store.record_rule_config(settings.file, by=resolve_user(settings))
        before = engine.cursor
        events = engine.process_new()
        if args.stale_now:
            events += engine.check_stale(now_ms())
        checked = store.count() if before == 0 else None
        if not args.quiet:
            for e in events:
                _print_event(e, args.json)
        kinds = {k: sum(e.kind == k for e in events) for k in ("raised", "escalated", "cleared")}
        active = len(store.active_alerts())
        what = f"{checked:,} readings" if checked is not None else "new readings"
        print(f"checked {what} up to id {engine.cursor}: {kinds['raised']} raised, "
              f"{kinds['escalated']} escalated, {kinds['cleared']} cleared; {active} active",
              file=sys.stderr if args.json else sys.stdout)
    finally:
        store.close()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..detect.scoring import compare_on_fleet, format_comparison
    from ..simulate import simulate_fleet

    if args.hours <= args.train_hours:
        raise CommandError("--hours must be larger than --train-hours (nothing left to test on)",
                           code=2)
    res = simulate_fleet(assets=args.assets, hours=args.hours, seed=args.seed,
                         start="2026-02-10 00:00:00", fault_rate=args.fault_rate)
    table = compare_on_fleet(res.readings, train_hours=args.train_hours)
    print(f"simulated fleet: {args.assets} pumps × {args.hours:g} h, seed {args.seed}, "
          f"{len(res.events)} fault episodes; detectors fitted on each pump's first "
          f"{args.train_hours:g} h, scored after that")
    print(format_comparison(table))
    print("rows: a row is positive while a fault label is on; the hour after a fault ends is not "
          "scored (recovery). Detector flags pass through the rules' alarm lifecycle (hold 3 "
          "readings, clear after 30); every detector's threshold is the score its training rows "
          "would exceed about once a week (horizon). FA/asset-day: alarm episodes touching no "
          "fault row. kind columns: "
          "fault episodes detected / present. cusum and zscore/ewma see raw, load-driven sensors; "
          "twin scores residuals of the twin model.")
    return 0


def cmd_skab(args: argparse.Namespace) -> int:
    from ..detect.skab import CHOSEN, format_skab, run_skab, skab_json, skab_methods

    available = skab_methods(seed=args.seed)
    names = list(dict.fromkeys(args.detector or available))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise CommandError(f"unknown detector {', '.join(map(repr, unknown))}; choose from "
                           f"{', '.join(available)}", code=2)
    folds = args.folds
    if folds is not None and folds not in ("loo", "leave-one-out"):
        try:
            folds = int(folds)
        except ValueError:
            raise CommandError(f"--folds must be 'loo' or an integer, got {args.folds!r}",
                               code=2) from None
    try:
        result = run_skab(args.data, {n: available[n] for n in names}, folds=folds)
    except FileNotFoundError as exc:
        raise CommandError(str(exc), code=2) from None
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    print(format_skab(result))
    print(skab_json(result, names[0] if args.detector else CHOSEN))
    return 0
