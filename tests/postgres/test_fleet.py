"""One fleet, many processes: 3 monitors on disjoint assets and 2 API servers on one PostgreSQL.

Afterwards every recorded reading is stored exactly once, each overheating episode raised exactly
one alarm (the monitors detect in parallel, on shards of the assets claimed in the database), and
every API answer seen while the monitors wrote was consistent."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

from twinlib.store import open_store

N = 400
ASSETS = ("pump-11", "pump-12", "pump-13")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recording(path, asset: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temp = 60.0 + rng.normal(0, 0.3, N)
    temp[100:160] += 41.0  # over the critical level, once
    df = pd.DataFrame({"timestamp": pd.date_range("2026-02-10", periods=N, freq="1s"),
                       "asset_id": asset, "temperature": temp.round(2),
                       "vibration": (0.3 + rng.normal(0, 0.01, N)).round(4),
                       "pressure": (40 + rng.normal(0, 0.2, N)).round(2)})
    df.to_csv(path, index=False)
    return df


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, json.loads(r.read())


@pytest.mark.slow
def test_three_monitors_and_two_api_servers_share_one_database(pg_url, tmp_path):
    env = {**os.environ, "TWIN_SETTINGS": str(tmp_path / "none.toml"), "PYTHONUNBUFFERED": "1"}
    twin = [sys.executable, "-m", "twinlib"]
    subprocess.run([*twin, "init-db", "--db", pg_url], env=env, check=True, capture_output=True)
    recs = {a: _recording(tmp_path / f"{a}.csv", a, i) for i, a in enumerate(ASSETS)}
    with open_store(pg_url) as st:  # known before their first reading: /data answers [] not 404
        st.upsert_assets([{"asset_id": a, "kind": "pump"} for a in ASSETS])
    ports = [_free_port(), _free_port()]
    apis = [subprocess.Popen([*twin, "api", "--db", pg_url, "--host", "127.0.0.1", "--port", str(p),
                              "--workers", "1"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for p in ports]
    mons = []
    try:
        for p, proc in zip(ports, apis):  # wait for this server's own answer
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, "API server died"
                try:
                    if _get(f"http://127.0.0.1:{p}/health")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "API server never answered"
                time.sleep(0.2)
        mons = [subprocess.Popen([*twin, "run", "--db", pg_url, "--source", "replay", "--file",
                                  str(tmp_path / f"{a}.csv"), "--speed", "max", "--batch", "40",
                                  "--no-notify", "--log-level", "WARNING"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for a in ASSETS]
        answers, max_ids = 0, {p: 0 for p in ports}
        while any(m.poll() is None for m in mons):
            for i, p in enumerate(ports):
                a = ASSETS[answers % 3]
                status, rows = _get(f"http://127.0.0.1:{p}/data?asset={a}&limit=25")
                assert status == 200
                ts = [pd.Timestamp(r["timestamp"]) for r in rows]
                assert ts == sorted(ts, reverse=True) and len(set(ts)) == len(ts)
                src = recs[a].set_index("timestamp")
                for r, t in zip(rows, ts):  # every value is the recorded one
                    assert r["temperature"] == src.loc[t.tz_localize(None), "temperature"]
                status, health = _get(f"http://127.0.0.1:{p}/health")
                assert health["max_id"] >= max_ids[p]  # never goes back
                max_ids[p] = health["max_id"]
                answers += 1
        for m in mons:
            assert m.wait(60) == 0, m.stderr.read().decode()[-2000:]
        assert answers >= 2
    finally:
        for proc in mons + apis:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    with open_store(pg_url) as st:
        for a in ASSETS:
            w = st.window(asset=a)
            assert len(w) == N and w["ts"].is_unique
            np.testing.assert_array_equal(w["temperature"].to_numpy(), recs[a]["temperature"].to_numpy())
        ids = [r.id for r in st.after(0, limit=10**6)]
        assert len(ids) == len(set(ids)) == 3 * N
        alarms = st.list_alerts(limit=None)
        crit = [x for x in alarms if x["rule"] == "temperature_high"]
        assert sorted(x["asset_id"] for x in crit) == sorted(ASSETS), alarms
        # detection ran by shards claimed in the database (the monitors in parallel), and
        # every shard's cursor reached the end of its assets' readings
        n = int(st.get_meta("detect.shards"))
        assert n >= 1 and st.get_meta("detect.cursor") is None   # no fleet-wide cursor
        for k in range(n):
            cur = int(st.get_meta(f"detect.cursor.s{k}of{n}") or 0)
            assert st.after(cur, limit=10**6, shard=(k, n)) == []
