"""Run every ``bench_<area>.py`` here and write one JSON report (``reports/bench.json``).

Benchmarks measure; they never assert a time. Compare reports run to run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the bench modules share _timing.py


def _machine() -> dict:
    import sqlite3

    import numpy
    import pandas
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "numpy": numpy.__version__, "pandas": pandas.__version__,
            "sqlite": sqlite3.sqlite_version}


def areas() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def _load(area: str):
    spec = importlib.util.spec_from_file_location(f"bench_{area}", HERE / f"bench_{area}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(only: list[str] | None = None, quick: bool = False, out: str | None = None) -> int:
    from twinlib.config import get_settings
    chosen = only or areas()
    unknown = sorted(set(chosen) - set(areas()))
    if unknown:
        print(f"unknown benchmark area(s): {', '.join(unknown)}; known: {', '.join(areas())}", file=sys.stderr)
        return 2
    path = Path(out) if out else get_settings().reports_dir / "bench.json"
    report = {"generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
              "quick": quick, "machine": _machine(), "sections": {}}
    if path.exists() and only:  # keep the other areas' last figures when re-running some
        try:
            report["sections"] = json.loads(path.read_text()).get("sections", {})
        except (OSError, ValueError):
            pass
    failed = 0
    for area in chosen:
        print(f"== {area}", flush=True)
        t0 = time.perf_counter()
        try:
            section = _load(area).run(quick=quick)
        except Exception:  # one broken area must not lose the others' figures
            traceback.print_exc()
            section = {"error": traceback.format_exc(limit=3)}
            failed += 1
        section["wall_s"] = round(time.perf_counter() - t0, 2)
        report["sections"][area] = section
        print(json.dumps(section, indent=1), flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", action="append")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    sys.exit(main(a.only, a.quick, a.out))
