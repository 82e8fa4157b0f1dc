"""Simulator generation rate, bulk-load rate beside raw sqlite3, query cost vs history size."""
from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from importlib import resources
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


def _raw_multirow(path: Path, df) -> float:
    """What plain sqlite3 reaches: prebuilt tuples, 1,000-row INSERT statements, one transaction."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(resources.files("twinlib.store").joinpath("schema.sql").read_text())
    cols = ("asset_id", "ts", "temperature", "vibration", "pressure", "label", "load", "speed", "ambient")
    ts = df["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64).tolist()
    data = [df["asset_id"].tolist(), ts] + [df[c].tolist() for c in cols[2:]]
    flat = list(chain.from_iterable(zip(*data)))
    width, per = len(cols), 1000
    one = "(" + ",".join("?" * width) + ")"
    sql = f"INSERT OR IGNORE INTO readings ({','.join(cols)}) VALUES " + ",".join([one] * per)
    n = len(df)
    t0 = time.perf_counter()
    con.execute("BEGIN")
    full = n // per
    for k in range(full):
        con.execute(sql, flat[k * per * width:(k + 1) * per * width])
    rest = n - full * per
    if rest:
        con.execute(f"INSERT OR IGNORE INTO readings ({','.join(cols)}) VALUES " + ",".join([one] * rest),
                    flat[full * per * width:])
    con.execute("COMMIT")
    dt = time.perf_counter() - t0
    con.close()
    return dt


def _bulk_load(tmp: Path, quick: bool) -> dict:
    hours = 6 if quick else 24
    df = simulate_fleet(assets=12, hours=hours, seed=2, start=START, fault_rate=1.0).readings
    n = len(df)
    raw, ours = [], []
    for i in range(3):
        p = tmp / f"raw{i}.db"
        raw.append(_raw_multirow(p, df))
        q = tmp / f"ours{i}.db"
        store = open_store(q, create=True)
        t0 = time.perf_counter()
        store.load_readings(df)
        ours.append(time.perf_counter() - t0)
        store.close()
        for f in (p, q):
            for suffix in ("", "-wal", "-shm"):
                Path(str(f) + suffix).unlink(missing_ok=True)
    raw_rate, our_rate = n / min(raw), n / min(ours)
    return {"rows": n, "raw_sqlite3_multirow_rows_per_s": round(raw_rate),
            "store_load_readings_rows_per_s": round(our_rate),
            "ratio_vs_raw": round(our_rate / raw_rate, 3),
            "note": "raw = prebuilt tuples into the same schema; store = from a DataFrame, "
                    "including conversion"}


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
    size = sum(os.path.getsize(f) for f in (path, Path(str(path) + "-wal")) if os.path.exists(f))
    out = {
        "rows": n,
        "load_s": round(load_s, 1),
        "latest10_all_us": median_us(lambda: store.latest(10)),
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
            "latest10_cost_ratio_large_vs_100k": round(large["latest10_all_us"] / small["latest10_all_us"], 2),
            "cursor_cost_ratio_large_vs_100k": round(large["cursor_after_last_tick_us"]
                                                     / small["cursor_after_last_tick_us"], 2),
        }
