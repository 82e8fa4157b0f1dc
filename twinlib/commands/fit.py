"""``twin fit --asset A --from T --to T``: fit an asset's twin on its own healthy history.

The fitted twin is what the alarm engine's twin-residual rule scores new readings against
(``twin detect`` and the live monitor; a running monitor picks it up at its next chunk). For a
kind with a physics model (the pump) it is the physics :class:`twinlib.twin.TwinModel`; for any
other kind — or with ``--learned`` — a :class:`twinlib.twin.LearnedTwin`: each measured signal
predicted from the kind's state signals and the other measured signals. Rows labelled as a
fault are left out. The twin is kept in the store (meta ``detect.twin.<asset>``, plain JSON) with
its training window; readings after the window's end are scored. ``--clear`` removes it.
"""
from __future__ import annotations

import argparse
import json

from ..store import open_store
from ..timeutil import format_ts, to_ms
from ._common import CommandError, add_db_option, settings_from

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("fit", help="fit an asset's twin on its healthy history (twin residual alarms)",
                       description="Fit the twin of one asset on its readings between --from and "
                                   "--to (default: all of them): the physics twin for pumps, a "
                                   "learned twin (each measured signal from the state signals "
                                   "and the other measured signals) for other kinds. The alarm "
                                   "engine then raises twin_residual alarms on readings after "
                                   "--to that stray from it.")
    add_db_option(p)
    p.add_argument("--asset", required=True, help="asset id")
    p.add_argument("--from", dest="start", metavar="T", help="first reading to learn from "
                   "(UTC time; default: the asset's first)")
    p.add_argument("--to", dest="end", metavar="T", help="last reading to learn from "
                   "(default: the asset's newest)")
    p.add_argument("--learned", action="store_true",
                   help="fit the learned twin even for a kind with a physics twin")
    p.add_argument("--clear", action="store_true", help="remove the asset's stored twin instead")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.set_defaults(func=cmd_fit)


def _time(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return to_ms(text)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"{what}: not a time: {text!r} ({exc})", code=2) from None


def cmd_fit(args: argparse.Namespace) -> int:
    from ..detect.engine import TWIN_KEY, fit_twin, learned_to_json, physics_to_json

    settings = settings_from(args)
    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    if start is not None and end is not None and end <= start:
        raise CommandError("--to must be after --from", code=2)
    store = open_store(settings.db_path)
    try:
        if not store.has_asset(args.asset):
            raise CommandError(f"no asset {args.asset!r} in the store", code=2)
        if args.clear:
            store.set_meta(TWIN_KEY + args.asset, "")
            print(f"twin of {args.asset} removed")
            return 0
        getter = getattr(store, "asset", None)
        stored = (getter(args.asset) or {}).get("kind") if getter is not None else None
        kind = settings.kind_for(args.asset, stored)
        hist = store.window(start, end, asset=args.asset)
        if hist.empty:
            raise CommandError(f"{args.asset} has no readings between "
                               f"{format_ts(start) if start else 'its first'} and "
                               f"{format_ts(end) if end else 'its newest'}", code=2)
        t0, t1 = int(hist["ts"].iloc[0]), int(hist["ts"].iloc[-1])
        try:
            model = fit_twin(kind, hist, learned=True if args.learned else None)
        except ValueError as exc:
            raise CommandError(f"cannot fit the twin of {args.asset}: {exc}", code=2) from None
        learned = type(model).__name__ == "LearnedTwin"
        dump = learned_to_json if learned else physics_to_json
        # scored from the end of the window asked for (or the last reading in it)
        train_to = end if end is not None else t1
        store.set_meta(TWIN_KEY + args.asset,
                       dump(model, train_from=start if start is not None else t0,
                            train_to=train_to, origin="fit"))
    finally:
        store.close()
    sigma = {k: float(v) for k, v in model.resid_std_.items()} if learned else \
        {k: float(v) for k, v in getattr(model, "resid_std_", {}).items()}
    summary = {"asset_id": args.asset, "kind": kind.name,
               "twin": "learned" if learned else "physics", "readings": int(len(hist)),
               "from": format_ts(t0), "to": format_ts(t1), "scored_after": format_ts(train_to),
               "residual_sigma": sigma,
               "inputs": ({m: p["inputs"] for m, p in model.models_.items()} if learned else None)}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    units = kind.units
    print(f"twin of {args.asset} ({kind.name}, {summary['twin']}) fitted on "
          f"{summary['readings']:,} readings, {summary['from']} → {summary['to']}")
    for name, s in sigma.items():
        print(f"  {name:<24} residual σ {s:.4g} {units.get(name, '')}".rstrip())
    print(f"twin_residual alarms: readings after {summary['scored_after']} are scored against it "
          f"([rules] twin_warning / twin_critical, in σ)")
    return 0
