"""Detection with several monitors on one PostgreSQL database: the assets are split into shards
claimed in the database; engines check disjoint shards in parallel, skip (never wait for) a shard
another holds, and no alarm is raised twice."""
from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd

from twinlib.detect.sharded import ShardedEngine
from twinlib.store import open_store

ASSETS = [f"pump-{i:02d}" for i in range(1, 7)]
N = 300


def _readings(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i, a in enumerate(ASSETS):
        temp = 60 + rng.normal(0, 0.3, N)
        temp[100:140] += 41.0                    # one overheating episode per asset
        frames.append(pd.DataFrame({
            "asset_id": a, "ts": 1_770_000_000_000 + np.arange(N, dtype=np.int64) * 1000,
            "temperature": temp, "vibration": 0.3 + rng.normal(0, 0.01, N),
            "pressure": 40 + rng.normal(0, 0.2, N)}))
    return pd.concat(frames, ignore_index=True)


def _high(store):
    return sorted(x["asset_id"] for x in store.list_alerts(limit=None)
                  if x["rule"] == "temperature_high")


def test_a_claimed_shard_is_skipped_not_waited_for_and_taken_up_later(pg_url):
    with open_store(pg_url, create=True) as st:
        st.load_readings(_readings(1))
    with open_store(pg_url) as a, open_store(pg_url) as holder:
        eng = ShardedEngine(a, shards=3, start=0)
        assert holder.try_claim("detect.s0of3")          # another monitor works shard 0
        eng.process_new()
        shard0 = [x for x in ASSETS if eng.views[0].mine(x)]
        assert shard0 and len(shard0) < len(ASSETS)
        assert _high(a) == sorted(set(ASSETS) - set(shard0))   # the others are done
        assert eng.skipped >= 1 and eng.behind()
        holder.release("detect.s0of3")
        eng.process_new()
        assert _high(a) == ASSETS and not eng.behind()
        state = json.loads(a.get_meta("detect.state"))   # the fleet-wide view of the rule state
        assert sorted(state) == ASSETS
        # a second engine (another monitor) finds nothing left: no alarm twice
        other = ShardedEngine(holder, start=1)
        assert other.shards == 3                          # fixed by the first
        assert other.process_new() == [] and _high(a) == ASSETS


def test_two_engines_in_parallel_check_every_reading_once(pg_url):
    with open_store(pg_url, create=True) as st:
        st.load_readings(_readings(2))
    stores = [open_store(pg_url), open_store(pg_url)]
    engines = [ShardedEngine(s, shards=4, start=2 * i) for i, s in enumerate(stores)]
    events: list[list] = [[], []]
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def run(i):
        try:
            go.wait()
            while True:
                events[i] += engines[i].process_new(200)
                if not engines[i].behind():
                    break
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors, errors
        raised = [e for ev in events for e in ev if e.kind == "raised" and
                  e.rule == "temperature_high"]
        assert sorted(e.asset_id for e in raised) == ASSETS       # each exactly once
        assert _high(stores[0]) == ASSETS
        assert engines[0].worked and engines[1].worked             # both did shards
        for k in range(4):    # every shard's cursor reached the end of its assets' readings
            cur = int(stores[0].get_meta(f"detect.cursor.s{k}of4"))
            assert stores[0].after(cur, limit=10**6, shard=(k, 4)) == []
    finally:
        for s in stores:
            s.close()


def test_twin_detect_on_a_sharded_database_checks_nothing_twice(pg_url, capsys):
    from twinlib.cli import main

    with open_store(pg_url, create=True) as st:
        st.load_readings(_readings(3))
        ShardedEngine(st, shards=2).process_new()
        assert _high(st) == ASSETS
    assert main(["detect", "--db", pg_url]) == 0
    assert "0 raised" in capsys.readouterr().out
    with open_store(pg_url) as st:
        assert _high(st) == ASSETS
