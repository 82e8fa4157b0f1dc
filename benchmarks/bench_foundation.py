"""Simulator generation rate, bulk-load rate beside raw sqlite3, query cost vs history size."""
from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from itertools import chain
from pathlib import Path

import numpy as np

from twinlib.simulate import FleetSimulator, simulate_fleet
from twinlib.store import open_store
from _timing import best_of, median_us  # noqa: E402  (benchmarks/ is on sys.path)

START = "2026-01-01 00:00:00"


def _generation(quick: bool) -> dict:
    hours = 6 if quick else 24
    n_assets = 12
    rows = None

    def go():
        nonlocal rows
        rows = len(simulate_fleet(assets=n_assets, hours=hours, seed=1, start=START, fault_rate=1.0).readings)

    best = best_of(go)
    return {"rows": rows, "seconds": round(best, 3), "readings_per_s": round(rows / best)}


_MINIMAL = ("CREATE TABLE r (asset_id TEXT, ts INTEGER, temperature REAL, vibration REAL, "
            "pressure REAL, PRIMARY KEY (asset_id, ts)) WITHOUT ROWID")


def _raw_minimal(path: Path, df) -> float:
    """The limit to measure against: prebuilt tuples into a minimal table keyed (asset_id, ts)
    WITHOUT ROWID (three sensors, nothing else), 1,000-row INSERT statements, one transaction."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(_MINIMAL)
    cols = ("asset_id", "ts", "temperature", "vibration", "pressure")
    ts = df["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64).tolist()
    data = [df["asset_id"].tolist(), ts] + [df[c].tolist() for c in cols[2:]]
    flat = list(chain.from_iterable(zip(*data)))
    width, per = len(cols), 1000
    one = "(" + ",".join("?" * width) + ")"
    sql = f"INSERT OR IGNORE INTO r ({','.join(cols)}) VALUES " + ",".join([one] * per)
    n = len(df)
    t0 = time.perf_counter()
    con.execute("BEGIN")
    full = n // per
    for k in range(full):
        con.execute(sql, flat[k * per * width:(k + 1) * per * width])
    rest = n - full * per
    if rest:
        con.execute(f"INSERT OR IGNORE INTO r ({','.join(cols)}) VALUES " + ",".join([one] * rest),
                    flat[full * per * width:])
    con.execute("COMMIT")
    dt = time.perf_counter() - t0
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return dt


def _size(path: Path) -> int:
    return sum(os.path.getsize(f) for f in (path, Path(str(path) + "-wal")) if os.path.exists(f))


def _skab_like(n_assets: int, hours: float):
    """An eight-signal fleet (the skab-testbed kind's channels) of the same reading count."""
    from twinlib.kinds import BUILTIN_KINDS
    import pandas as pd
    names = BUILTIN_KINDS["skab-testbed"].names
    steps = int(hours * 3600)
    rng = np.random.default_rng(4)
    ts = np.repeat(np.datetime64(START, "ms") + np.arange(steps).astype("timedelta64[s]"), n_assets)
    df = pd.DataFrame({"timestamp": ts, "asset_id": np.tile([f"bed-{i:02d}" for i in range(n_assets)], steps)})
    for j, s in enumerate(names):
        df[s] = np.round(rng.normal(10 + j, 1, len(df)), 4)
    return df


def _bulk_load(tmp: Path, quick: bool) -> dict:
    hours = 6 if quick else 24
    df = simulate_fleet(assets=12, hours=hours, seed=2, start=START, fault_rate=1.0).readings
    eight = _skab_like(12, hours)
    n = len(df)
    raw, ours, wide = [], [], []
    sizes = {}
    for i in range(3):
        p = tmp / f"raw{i}.db"
        raw.append(_raw_minimal(p, df))
        sizes["minimal"] = _size(p)
        q = tmp / f"ours{i}.db"
        store = open_store(q, create=True)
        t0 = time.perf_counter()
        store.load_readings(df)
        ours.append(time.perf_counter() - t0)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        sizes["pump"] = _size(q)
        w = tmp / f"eight{i}.db"
        store = open_store(w, create=True)
        t0 = time.perf_counter()
        store.load_readings(eight, kind="skab-testbed")
        wide.append(time.perf_counter() - t0)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        sizes["eight"] = _size(w)
        for f in (p, q, w):
            for suffix in ("", "-wal", "-shm"):
                Path(str(f) + suffix).unlink(missing_ok=True)
    raw_rate, our_rate, wide_rate = n / min(raw), n / min(ours), len(eight) / min(wide)
    return {"rows": n,
            "raw_sqlite3_minimal_table_rows_per_s": round(raw_rate),
            "store_load_readings_rows_per_s": round(our_rate),
            "ratio_vs_raw_minimal": round(our_rate / raw_rate, 3),
            "eight_signal_load_readings_rows_per_s": round(wide_rate),
            "bytes_per_reading_minimal_table": round(sizes["minimal"] / n, 1),
            "bytes_per_pump_reading": round(sizes["pump"] / n, 1),
            "bytes_per_eight_signal_reading": round(sizes["eight"] / len(eight), 1),
            "note": "raw = prebuilt tuples into a minimal (asset_id, ts) WITHOUT ROWID table of the "
                    "three sensors only; store = from a DataFrame, including conversion, label and "
                    "the three operating-state values, and the ingest log; eight = the "
                    "skab-testbed kind's eight channels per reading"}


def _queries(tmp: Path, rows_target: int) -> dict:
    path = tmp / f"q{rows_target}.db"
    store = open_store(path, create=True)
    assets = 20
    steps = rows_target // assets
    sim = FleetSimulator(assets=assets, freq_s=1.0, seed=3, start=START, fault_rate=1.0)
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        k = min(50_000, steps - done)
        store.load_readings(sim.step(k))
        done += k
    load_s = time.perf_counter() - t0
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    n = store.count()
    top = store.max_id()
    size = _size(path)
    out = {
        "rows": n,
        "load_s": round(load_s, 1),
        # between two commits (what a polled /data sees) and right after one (cache dropped)
        "latest10_all_us": median_us(lambda: store.latest(10)),
        "latest10_all_uncached_us": median_us(lambda: (setattr(store, "_latest_cache", None),
                                                       store.latest(10))),
        "latest10_asset_us": median_us(lambda: store.latest(10, asset="pump-07")),
        "cursor_after_last_tick_us": median_us(lambda: store.after(top - assets * 2)),
        "latest_per_asset_us": median_us(lambda: store.latest_per_asset(), repeat=50),
        "db_bytes": size,
        "db_bytes_per_million_readings": round(size / n * 1e6),
    }
    store.close()
    return out


def run(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        small = _queries(tmp, 100_000)
        large = _queries(tmp, 1_000_000 if quick else 10_000_000)
        return {
            "generation": _generation(quick),
            "bulk_load": _bulk_load(tmp, quick),
            "queries_100k": small,
            f"queries_{'1M' if quick else '10M'}": large,
            "latest10_cost_ratio_large_vs_100k": round(large["latest10_all_uncached_us"]
                                                       / small["latest10_all_uncached_us"], 2),
            "cursor_cost_ratio_large_vs_100k": round(large["cursor_after_last_tick_us"]
                                                     / small["cursor_after_last_tick_us"], 2),
        }
