"""``twin bench``: run the benchmarks in ``benchmarks/`` and write ``reports/bench.json``."""
from __future__ import annotations

import runpy
from pathlib import Path

from ._common import CommandError

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure speed and size; writes reports/bench.json")
    p.add_argument("--only", action="append", metavar="AREA",
                   help="run only this area (foundation, detect, models, api, dashboard, monitor); repeatable")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    p.add_argument("--out", help="report path (default: <reports dir>/bench.json)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    runner = Path.cwd() / "benchmarks" / "run.py"
    if not runner.exists():
        raise CommandError("benchmarks/run.py not found: run `twin bench` from the twinlib checkout")
    module = runpy.run_path(str(runner))
    return module["main"](only=args.only, quick=args.quick, out=args.out)
