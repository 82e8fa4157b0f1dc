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
_RAW_COLS = ("asset_id", "ts", "temperature", "vibration", "pressure")


def _raw_params(df, order: str) -> list:
    """The minimal table's rows as one flat parameter list, built before the clock starts.

    ``order="key"``: sorted by the table's key (asset_id, ts), the fastest order for a clustered
    B-tree (each asset's rows append to its own part; measured ~2× the CPU of input order, which
    writes 12 places in turn). ``"input"``: as the simulator makes them (time-major).
    """
    ts = df["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    aid = df["asset_id"].to_numpy(dtype=object)
    idx = np.lexsort((ts, aid)) if order == "key" else np.arange(len(df))
    data = [aid[idx].tolist(), ts[idx].tolist()] + [df[c].to_numpy()[idx].tolist() for c in _RAW_COLS[2:]]
    return list(chain.from_iterable(zip(*data)))


def _raw_minimal(path: Path, flat: list, n: int, cache_kib: int | None = None) -> tuple[float, float]:
    """The limit to measure against: prebuilt parameters into a minimal table keyed (asset_id, ts)
    WITHOUT ROWID (three sensors, nothing else), 1,000-row INSERT statements, one transaction,
    WAL + synchronous=NORMAL like the store, the commit's checkpoint included. ``cache_kib``:
    the page cache the store's bulk load uses (a fair limit gets the same). Returns (wall s,
    process CPU s, wall s of the COMMIT — SQLite's auto-checkpoint runs inside it)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(_MINIMAL)
    width, per = len(_RAW_COLS), 1000
    one = "(" + ",".join("?" * width) + ")"
    sql = f"INSERT OR IGNORE INTO r ({','.join(_RAW_COLS)}) VALUES " + ",".join([one] * per)
    c0, t0 = time.process_time(), time.perf_counter()
    con.execute("BEGIN")
    if cache_kib:
        con.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    full = n // per
    for k in range(full):
        con.execute(sql, flat[k * per * width:(k + 1) * per * width])
    rest = n - full * per
    if rest:
        con.execute(f"INSERT OR IGNORE INTO r ({','.join(_RAW_COLS)}) VALUES " + ",".join([one] * rest),
                    flat[full * per * width:])
    k0 = time.perf_counter()
    con.execute("COMMIT")
    end = time.perf_counter()
    out = end - t0, time.process_time() - c0, end - k0
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return out


def _size(path: Path) -> int:
    return sum(os.path.getsize(f) for f in (path, Path(str(path) + "-wal")) if os.path.exists(f))


def _skab_like(n_assets: int, hours: float, names=None):
    """An eight-signal fleet (the skab-testbed kind's channels) of the same reading count."""
    import pandas as pd

    from twinlib.kinds import BUILTIN_KINDS
    names = names or BUILTIN_KINDS["skab-testbed"].names
    steps = int(hours * 3600)
    rng = np.random.default_rng(4)
    ts = np.repeat(np.datetime64(START, "ms") + np.arange(steps).astype("timedelta64[s]"), n_assets)
    df = pd.DataFrame({"timestamp": ts, "asset_id": np.tile([f"bed-{i:02d}" for i in range(n_assets)], steps)})
    for j, s in enumerate(names):
        df[s] = np.round(rng.normal(10 + j, 1, len(df)), 4)
    return df


def _store_load(path: Path, df, kind: str | None = None) -> tuple[float, float, int, dict]:
    """`load_readings` into a fresh store: (wall s, process CPU s, bytes on disk after a checkpoint,
    the store's own account of the load: ``last_load_profile``)."""
    store = open_store(path, create=True)
    c0, t0 = time.process_time(), time.perf_counter()
    store.load_readings(df, kind=kind)
    out = time.perf_counter() - t0, time.process_time() - c0
    prof = dict(getattr(store, "last_load_profile", {}) or {})
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return (*out, _size(path), prof)


def _per_m(seconds, rows: int):
    return None if seconds is None else round(seconds / rows * 1e6, 3)


def _split(runs: list, rows: int, prefix: str) -> dict:
    """Where one kind's wall time went, from its fastest run (seconds per million readings):
    wall, process CPU (all threads), wall beyond CPU (I/O waits, other processes, lock waits),
    and the store's phases: the helper thread's CPU, the COMMIT, the checkpoint after it."""
    wall, cpu, _size_, prof = min(runs, key=lambda r: r[0])
    out = {f"{prefix}_wall_s_per_million": _per_m(wall, rows),
           f"{prefix}_cpu_s_per_million_same_run": _per_m(cpu, rows),
           f"{prefix}_wall_beyond_cpu_s_per_million": _per_m(wall - cpu, rows)}
    for key in ("plan_cpu_s", "prepare_thread_cpu_s", "commit_wall_s", "commit_and_checkpoint_wall_s",
                "checkpoint_wall_s", "checkpoint_cpu_s"):
        if prof.get(key) is not None:
            out[f"{prefix}_{key[:-2]}_s_per_million"] = _per_m(prof[key], rows)
    helper = prof.get("prepare_thread_cpu_s")
    if helper is not None:  # the caller's thread CPU: what bounds the wall rate on an idle second core
        out[f"{prefix}_caller_thread_cpu_s_per_million"] = _per_m(cpu - helper, rows)
    if prof.get("wal_syncs") is not None:
        out[f"{prefix}_wal_syncs"] = prof["wal_syncs"]
    return out


def _bulk_load(tmp: Path, quick: bool) -> dict:
    """Store ingest against raw sqlite3 into the minimal table, runs interleaved (raw, store, raw,
    store, …) so that both see the same machine; wall time and process CPU time of each."""
    from twinlib.store.sqlite import _BULK_CACHE_KIB

    hours = 6 if quick else 24
    df = simulate_fleet(assets=12, hours=hours, seed=2, start=START, fault_rate=1.0).readings
    eight = _skab_like(12, hours)
    one = _skab_like(12, hours, names=("value",))
    n = len(df)
    flat = {order: _raw_params(df, order) for order in ("key", "input")}
    runs = {k: [] for k in ("raw_key", "raw_key_cache", "raw_input", "store", "eight", "one")}
    full = {k: [] for k in ("raw_key", "raw_key_cache", "store", "eight")}  # with the splits
    sizes, loads = {}, []
    for i in range(3):
        p = tmp / f"raw{i}.db"
        for name, order, cache in (("raw_key", "key", None), ("raw_key_cache", "key", _BULK_CACHE_KIB),
                                   ("raw_input", "input", None)):
            wall, cpu, commit = _raw_minimal(p, flat[order], n, cache)
            runs[name].append((wall, cpu))
            if name in full:
                full[name].append((wall, cpu, None, {"commit_and_checkpoint_wall_s": commit}))
            sizes["minimal"] = _size(p)
            for suffix in ("", "-wal", "-shm"):
                Path(str(p) + suffix).unlink(missing_ok=True)
        for name, frame, kind in (("store", df, None), ("eight", eight, "skab-testbed"),
                                  ("one", one, "machine-temperature")):
            q = tmp / f"{name}{i}.db"
            wall, cpu, size, prof = _store_load(q, frame, kind)
            runs[name].append((wall, cpu))
            if name in full:
                full[name].append((wall, cpu, size, prof))
            sizes[name] = size
            for suffix in ("", "-wal", "-shm"):
                Path(str(q) + suffix).unlink(missing_ok=True)
        loads.append(round(os.getloadavg()[0], 2))
    rows = {"raw_key": n, "raw_key_cache": n, "raw_input": n, "store": n, "eight": len(eight), "one": len(one)}
    rate = {k: rows[k] / min(w for w, _ in v) for k, v in runs.items()}            # best wall
    cpu_m = {k: min(c for _, c in v) / rows[k] * 1e6 for k, v in runs.items()}    # CPU s per million
    limit = max(("raw_key", "raw_key_cache"), key=lambda k: rate[k])
    limit_cpu = min(cpu_m["raw_key"], cpu_m["raw_key_cache"])
    return {"rows": n,
            # the limit: the faster of raw in key order with SQLite's default cache / the store's
            "raw_sqlite3_minimal_table_rows_per_s": round(rate[limit]),
            "raw_sqlite3_minimal_table_how": "key order" + (", bulk page cache" if limit.endswith("cache") else ""),
            "raw_sqlite3_minimal_table_key_order_rows_per_s": round(rate["raw_key"]),
            "raw_sqlite3_minimal_table_key_order_bulk_cache_rows_per_s": round(rate["raw_key_cache"]),
            "raw_sqlite3_minimal_table_input_order_rows_per_s": round(rate["raw_input"]),
            "store_load_readings_rows_per_s": round(rate["store"]),
            "ratio_vs_raw_minimal": round(rate["store"] / rate[limit], 3),
            "raw_minimal_cpu_s_per_million": round(limit_cpu, 3),
            "raw_minimal_input_order_cpu_s_per_million": round(cpu_m["raw_input"], 3),
            "store_cpu_s_per_million": round(cpu_m["store"], 3),
            "ratio_vs_raw_minimal_cpu": round(limit_cpu / cpu_m["store"], 3),
            "eight_signal_load_readings_rows_per_s": round(rate["eight"]),
            "eight_signal_cpu_s_per_million": round(cpu_m["eight"], 3),
            "one_signal_load_readings_rows_per_s": round(rate["one"]),
            "one_signal_cpu_s_per_million": round(cpu_m["one"], 3),
            # an 8-signal reading against 8 separate 1-signal rows (< 1: the wide reading is cheaper)
            "eight_signal_reading_vs_eight_one_signal_rows_cpu": round(cpu_m["eight"] / (8 * cpu_m["one"]), 3),
            "bytes_per_reading_minimal_table": round(sizes["minimal"] / n, 1),
            "bytes_per_pump_reading": round(sizes["store"] / n, 1),
            "bytes_per_eight_signal_reading": round(sizes["eight"] / len(eight), 1),
            "bytes_per_one_signal_reading": round(sizes["one"] / len(one), 1),
            "eight_signal_reading_vs_eight_one_signal_rows_bytes": round(
                sizes["eight"] / len(eight) / (8 * sizes["one"] / len(one)), 3),
            # where the wall time goes (fastest run of each; s per million readings)
            **_split(full["store"], n, "store"),
            **_split(full[limit], n, "raw_minimal"),
            **_split(full["eight"], len(eight), "eight_signal"),
            "loadavg_1min": loads,
            "note": "rates: best wall of 3 interleaved runs; cpu: least process CPU time of 3. "
                    "raw = prebuilt parameters (no conversion counted) into a minimal (asset_id, ts) "
                    "WITHOUT ROWID table of the three sensors only, in key order (the fastest: "
                    "input order is reported beside it), 1,000-row INSERTs; store = from a "
                    "DataFrame, including conversion, label, the three operating-state values and "
                    "the ingest log; eight = the skab-testbed kind's eight channels per reading; "
                    "one = a one-signal kind (what each of 8 narrow rows would be). Splits: "
                    "process CPU counts every thread (a big store load builds parameters on a "
                    "helper thread, so CPU may exceed wall on an idle machine); caller_thread_cpu "
                    "is what bounds the wall rate then; wall_beyond_cpu is I/O waits plus time "
                    "lost to other processes; raw's commit includes SQLite's auto-checkpoint, the "
                    "store checkpoints right after its commit (checkpoint_wall)"}


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
