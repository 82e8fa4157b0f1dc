"""Detection speed (vectorised rules and detectors, per-reading latency) and SKAB figures.

Targets from the detection issue (measured here, never asserted): threshold rules ≥ 100M
readings/s, rolling detectors ≥ 10M readings/s, incremental scoring per live reading well under a
millisecond. A reading is one row (one asset, one instant, three sensors).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from twinlib.detect import AlarmEngine
from twinlib.detect.detectors import CUSUM, PCAT2Q, EWMAScore, RollingZScore, TwinResidualDetector
from twinlib.detect.rules import AssetRuleMachine, default_ruleset
from twinlib.simulate import simulate_fleet
from twinlib.store import open_store
from _timing import best_of, median_us  # noqa: E402  (benchmarks/ is on sys.path)

START = "2026-01-01 00:00:00"
SENSORS = ("temperature", "vibration", "pressure")
SKAB_DIR = Path(os.environ.get("TWIN_SKAB_DIR",
                               Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "skab-dev"))


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"temperature": 60 + 5 * rng.standard_normal(n),
                         "vibration": 0.3 + 0.05 * rng.standard_normal(n),
                         "pressure": 50 + 3 * rng.standard_normal(n)})


def _vectorised(quick: bool) -> dict:
    n = 2_000_000 if quick else 10_000_000
    df = _frame(n)
    cols = {s: np.ascontiguousarray(df[s].to_numpy()) for s in SENSORS}
    rules = default_ruleset()
    flags = np.empty(n, dtype=bool)
    out = {"rows": n}
    t = best_of(lambda: rules.breaches(cols, out=flags), 5)
    out["threshold_rules_readings_per_s"] = round(n / t)
    for name, det in (("rolling_zscore", RollingZScore(window=60)), ("ewma", EWMAScore()),
                      ("cusum", CUSUM()), ("pca_t2q", PCAT2Q(n_components=2))):
        det.fit(df.iloc[:20_000])
        t = best_of(lambda: det.score(df), 3)
        out[f"{name}_readings_per_s"] = round(n / t)
    return out


def _incremental(quick: bool) -> dict:
    res = simulate_fleet(assets=1, hours=2.0, seed=1, start=START, fault_rate=0.0)
    rows = res.readings.to_dict("records")
    out = {}
    m = AssetRuleMachine("pump-01", default_ruleset())
    it = iter(range(10**9))

    def step_rules():
        i = next(it)
        r = rows[i % len(rows)]
        m.step(1_767_225_600_000 + i * 1000, r)

    out["rule_machine_step_us"] = median_us(step_rules, 2000, digits=2)
    for name, det in (("rolling_zscore", RollingZScore(window=60)), ("ewma", EWMAScore()),
                      ("cusum", CUSUM()), ("pca_t2q", PCAT2Q(n_components=2)),
                      ("twin_residual", TwinResidualDetector(grace=3600))):
        det.fit(res.readings.iloc[:3600])
        for x in rows[:100]:
            det.learn_one(x)
        k = iter(range(10**9))

        def one():
            x = rows[100 + next(k) % (len(rows) - 100)]
            det.score_one(x)
            det.learn_one(x)

        out[f"{name}_score_learn_one_us"] = median_us(one, 500 if quick else 2000, digits=2)
    # the live path: one reading written, then process_new() on it (SQLite transaction included)
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "b.db", create=True)
        eng = AlarmEngine(st)
        df = res.readings
        j = iter(range(len(df)))
        times = []
        for _ in range(200 if quick else 1000):
            st.load_readings(df.iloc[[next(j)]])
            t0 = time.perf_counter_ns()
            eng.process_new()
            times.append(time.perf_counter_ns() - t0)
        st.close()
    out["engine_process_new_one_reading_us"] = round(statistics.median(times) / 1000, 1)
    # the same with the twin-residual rule on (twin fitted on the first hour)
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "t.db", create=True)
        st.load_readings(df.iloc[:3700])
        eng = AlarmEngine(st, {"rules": {"twin_train_hours": 1.0}})
        eng.process_new()
        times = []
        for i in range(3700, 3700 + (200 if quick else 1000)):
            st.load_readings(df.iloc[[i]])
            t0 = time.perf_counter_ns()
            eng.process_new()
            times.append(time.perf_counter_ns() - t0)
        st.close()
    out["engine_with_twin_one_reading_us"] = round(statistics.median(times) / 1000, 1)
    return out


def _engine_batch(quick: bool) -> dict:
    res = simulate_fleet(assets=4, hours=3.0 if quick else 12.0, seed=2, start=START, fault_rate=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "b.db", create=True)
        st.load_readings(res.readings)
        t0 = time.perf_counter()
        events = AlarmEngine(st).process_new()
        dt = time.perf_counter() - t0
        st.close()
    n = len(res.readings)
    return {"rows": n, "seconds": round(dt, 3), "readings_per_s": round(n / dt), "events": len(events)}


def _skab() -> dict:
    if not SKAB_DIR.exists():
        return {"skipped": f"{SKAB_DIR} not found (set TWIN_SKAB_DIR)"}
    from twinlib.detect.skab import CHOSEN, run_skab

    t0 = time.perf_counter()
    result = run_skab(SKAB_DIR)
    out = {"files": len(result["files"]), "seconds": round(time.perf_counter() - t0, 2),
           "chosen": CHOSEN}
    for name, r in result["methods"].items():
        out[name] = {"f1": round(r["f1"], 4), "far": round(r["far"], 4), "mar": round(r["mar"], 4),
                     "nab_standard": round(r["nab"]["standard"], 2)}
    return out


def run(quick: bool = False) -> dict:
    """Every detection figure; ``quick`` uses smaller inputs (same code paths)."""
    return {"vectorised": _vectorised(quick), "incremental": _incremental(quick),
            "engine_batch": _engine_batch(quick), "skab": _skab()}


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
