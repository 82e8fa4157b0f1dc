"""PostgreSQL beside SQLite: bulk ingest (binary COPY), GET /data p99, latest-N and the live cursor
as the history grows, 24 h of one asset at 1-minute buckets from the rollups, bytes per reading.

Ingest: ``ingest_readings_per_s`` per size (wall clock, cumulative over the loads) beside the
CPU seconds per million readings of this process (the client) and of the server backend (read
from ``/proc/<backend pid>/stat``, so only for a server on this machine), the load average, and
the target; ``ingest`` puts both backends and the target side by side.

``ingest_paths``: the load as it is (a day without a partition gets its partition built by the
load, key at ATTACH) against row-by-row key maintenance, interleaved in one run; beside
``get_data_p99_us`` (GET /data kept while ``change_stamp()`` holds) ``get_data_p99_no_stamp_us``
(every answer read afresh, as before schema 5).

Needs a PostgreSQL server: ``TWIN_BENCH_PG_URL`` (else ``TWIN_TEST_PG_URL``, else the local
socket); the bench works in a throw-away schema. Quick mode: 100k → 1M readings; full: 100k →
10M. Pump readings: 6 float64 values each, 8 assets at 1 Hz.
"""
from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from _timing import median_us  # noqa: E402  (benchmarks/ is on sys.path)

T0 = 1_767_225_600_000  # 2026-01-01
ASSETS = 8
#: Issue #13's ingest target (pump readings per second through the store, on this 2-core machine).
INGEST_TARGET = 300_000
SIGNALS = ("temperature", "vibration", "pressure", "load", "speed", "ambient")


def _url() -> str:
    return (os.environ.get("TWIN_BENCH_PG_URL") or os.environ.get("TWIN_TEST_PG_URL")
            or "postgresql:///postgres?host=/var/run/postgresql")


def _frame(first_row: int, n: int, seed: int) -> pd.DataFrame:
    """Readings first_row … first_row+n-1 of the fleet: row k is asset k % ASSETS at second k // ASSETS."""
    rng = np.random.default_rng(seed)
    k = np.arange(first_row, first_row + n, dtype=np.int64)
    df = pd.DataFrame({"asset_id": np.array([f"pump-{i:02d}" for i in range(ASSETS)])[k % ASSETS],
                       "ts": T0 + (k // ASSETS) * 1000})
    for j, s in enumerate(SIGNALS):
        df[s] = (rng.normal(50 + j, 3, n)).round(2)
    df["label"] = np.where(rng.random(n) < 0.01, "bearing_wear", "healthy")
    return df


def _proc_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) of a local process, e.g. the server backend of a connection
    (None when it is not on this machine, as with a remote server)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError, ValueError, IndexError):
        return None


def _backends(store) -> list[int]:
    """The server backend pids of a PostgreSQL store's connections (the loads' and the side one)."""
    if store.backend != "postgresql":
        return []
    return [c.info.backend_pid for c in (store._raw, store._ddl) if c is not None and not c.closed]


def _p99_us(fn, repeat: int = 400) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return round(times[int(0.99 * (len(times) - 1))] / 1000, 1)


def _size(store, path) -> int:
    if store.backend == "postgresql":
        return store.size_bytes()["readings"]
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(path).stat().st_size


def _measure(store, loc, n_total: int) -> dict:
    from twinlib.api import create_app
    from twinlib.config import get_settings

    top = store.max_id()
    out = {"readings": n_total}
    out["latest_10_one_asset_us"] = median_us(lambda: store.latest(10, asset="pump-03"))
    out["latest_10_fleet_us"] = median_us(lambda: store.latest(10), repeat=100)
    out["cursor_after_1000_us"] = median_us(lambda: store.after(top - 1000, limit=1000), repeat=30)
    out["cursor_idle_us"] = median_us(lambda: store.after(top), repeat=200)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(get_settings(db_path=str(loc), settings_file=Path(tmp) / "none.toml"))
        client = app.test_client()
        out["get_data_p99_us"] = _p99_us(lambda: client.get("/data"))
        out["get_data_median_us"] = median_us(lambda: client.get("/data"), repeat=200)
        if store.backend == "postgresql":  # beside it: every answer read afresh (no stamp)
            reader = app.extensions["twinlib.stores"].reader()
            reader.change_stamp = lambda: None
            out["get_data_p99_no_stamp_us"] = _p99_us(lambda: client.get("/data"))
            del reader.change_stamp
    t = time.perf_counter()
    store.refresh_rollups()
    out["rollup_refresh_s"] = round(time.perf_counter() - t, 2)
    last = store.newest_ts()
    day = (last - 86_400_000 + 1, last)
    n = len(store.downsample(60, *day, asset="pump-03"))
    out["day_at_1min_buckets"] = n
    out["day_at_1min_from_rollups_ms"] = round(median_us(
        lambda: store.downsample(60, *day, asset="pump-03"), repeat=10) / 1000, 2)
    out["day_at_1min_from_raw_ms"] = round(median_us(
        lambda: store._downsample_raw(60, *day, asset="pump-03"), repeat=3) / 1000, 2)
    out["bytes_per_reading"] = round(_size(store, loc) / n_total, 1)
    return out


def _backend(name: str, loc, sizes: list[int]) -> dict:
    from twinlib.store import open_store
    res = {"sizes": []}
    store = open_store(loc, create=True)
    loaded = 0
    load_s = client_s = 0.0
    server_s: float | None = 0.0
    try:
        for target in sizes:
            while loaded < target:
                n = min(1_000_000, target - loaded)
                df = _frame(loaded, n, seed=loaded)
                pids = _backends(store)
                s0 = {p: _proc_cpu_s(p) for p in pids}
                t, c = time.perf_counter(), time.process_time()
                store.load_readings(df)
                load_s += time.perf_counter() - t
                client_s += time.process_time() - c
                for p in _backends(store):   # (the side connection may have opened meanwhile)
                    now, before = _proc_cpu_s(p), s0.get(p, 0.0)
                    server_s = None if None in (now, before, server_s) else server_s + now - before
                loaded += n
            row = _measure(store, loc, loaded)
            row["ingest_readings_per_s"] = round(loaded / load_s)
            row["ingest_target_readings_per_s"] = INGEST_TARGET
            row["ingest_client_cpu_s_per_million"] = round(client_s / loaded * 1e6, 3)
            if name == "postgresql":
                row["ingest_server_cpu_s_per_million"] = (None if server_s is None
                                                          else round(server_s / loaded * 1e6, 3))
            row["loadavg_1m"] = round(os.getloadavg()[0], 2)
            res["sizes"].append(row)
            print(name, row, flush=True)
    finally:
        store.close()
    return res


def _copy_formats(url: str, n: int = 200_000) -> dict:
    """Client+server time of COPY binary (numpy-built stream, what the store sends) against COPY
    text (one formatted line per reading) into a scratch table of the readings' shape."""
    import psycopg

    from twinlib.store.postgres import _copy_binary
    rng = np.random.default_rng(0)
    ts = T0 + np.arange(n, dtype=np.int64) * 1000
    ids = np.arange(1, n + 1, dtype=np.int64)
    lab = np.zeros(n, dtype=np.int64)
    mat = rng.normal(50, 3, (n, 6))
    out = {}
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TEMP TABLE scratch (asset integer, ts bigint, id bigint, label smallint, vals bytea)")
        for fmt in ("binary", "text"):
            c.execute("TRUNCATE scratch")
            t = time.perf_counter()
            if fmt == "binary":
                data = _copy_binary(1, ts, ids, lab, mat)
            else:
                blobs = np.ascontiguousarray(mat, dtype="<f8").view("V48").ravel()
                buf = io.StringIO()
                for a, b, c_, v in zip(ts.tolist(), ids.tolist(), lab.tolist(), blobs):
                    buf.write(f"1\t{a}\t{b}\t{c_}\t\\\\x{bytes(v).hex()}\n")
                data = buf.getvalue().encode()
            with c.cursor().copy(f"COPY scratch FROM STDIN (FORMAT {fmt.upper()})") as cp:
                cp.write(data)
            out[f"copy_{fmt}_readings_per_s"] = round(n / (time.perf_counter() - t))
    return out


def _ingest_paths(url: str, loads: int) -> dict:
    """The store's load with days' partitions built by the load itself (keys built at ATTACH;
    what ``load_readings`` does) against keeping every row's key up in a partition created
    beforehand (``_NEW_DAY_ROWS`` set out of reach), 1M-row loads into two stores, interleaved
    A B B A …: wall, client and server CPU per million readings."""
    import psycopg

    from twinlib.store import open_store
    from twinlib.store import postgres as pgmod

    keep = pgmod._NEW_DAY_ROWS
    out = {m: {"wall_s": 0.0, "client_s": 0.0, "server_s": 0.0} for m in ("new_days_built", "row_by_row")}
    stores = {}
    try:
        for m in out:
            sep = "&" if "?" in url else "?"
            schema = "i13_paths_" + uuid.uuid4().hex[:8]
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f"CREATE SCHEMA {schema}")
            stores[m] = (schema, open_store(f"{url}{sep}options={quote(f'-c search_path={schema}')}",
                                            create=True))
        for k in range(loads):
            df = _frame(k * 1_000_000, 1_000_000, seed=k)
            for m in (list(out) if k % 2 == 0 else list(out)[::-1]):
                pgmod._NEW_DAY_ROWS = keep if m == "new_days_built" else 1 << 62
                st = stores[m][1]
                s0 = {p: _proc_cpu_s(p) for p in _backends(st)}
                t, c = time.perf_counter(), time.process_time()
                st.load_readings(df)
                out[m]["wall_s"] += time.perf_counter() - t
                out[m]["client_s"] += time.process_time() - c
                out[m]["server_s"] += sum((_proc_cpu_s(p) or 0.0) - (s0.get(p) or 0.0) for p in _backends(st))
    finally:
        pgmod._NEW_DAY_ROWS = keep
        for schema, st in stores.values():
            st.close()
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    n = loads * 1_000_000
    return {"loads": loads, "loadavg_1m": round(os.getloadavg()[0], 2), **{
        m: {"readings_per_s": round(n / r["wall_s"]),
            "client_cpu_s_per_million": round(r["client_s"] / n * 1e6, 3),
            "server_cpu_s_per_million": round(r["server_s"] / n * 1e6, 3)} for m, r in out.items()}}


def run(quick: bool = False) -> dict:
    import psycopg
    sizes = [100_000, 1_000_000] if quick else [100_000, 1_000_000, 10_000_000]
    base = _url()
    schema = "i13_bench_" + uuid.uuid4().hex[:8]
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-c search_path={schema}')}"
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
        server = c.execute("SHOW server_version").fetchone()[0]
    report = {"server": f"PostgreSQL {server}", "assets": ASSETS, "values_per_reading": len(SIGNALS)}
    try:
        report["copy_formats"] = _copy_formats(url)
        report["ingest_paths"] = _ingest_paths(base, loads=2 if quick else 6)
        report["postgresql"] = _backend("postgresql", url, sizes)
        with tempfile.TemporaryDirectory() as tmp:
            report["sqlite"] = _backend("sqlite", Path(tmp) / "bench.db", sizes)
        # the ingest figures side by side, per size, with the target
        report["ingest"] = {"target_readings_per_s": INGEST_TARGET, "sizes": [
            {"readings": p["readings"], "postgresql_readings_per_s": p["ingest_readings_per_s"],
             "sqlite_readings_per_s": q["ingest_readings_per_s"],
             "postgresql_meets_target": p["ingest_readings_per_s"] >= INGEST_TARGET,
             "postgresql_client_cpu_s_per_million": p["ingest_client_cpu_s_per_million"],
             "postgresql_server_cpu_s_per_million": p.get("ingest_server_cpu_s_per_million"),
             "loadavg_1m": p["loadavg_1m"]}
            for p, q in zip(report["postgresql"]["sizes"], report["sqlite"]["sizes"])]}
    finally:
        with psycopg.connect(base, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return report
