"""PostgresStore's bulk ingest: one COPY of the appending assets, staging for the rest, the
fallback when another writer wins a race, chunked loads, the ingest log it writes, the binary
records it sends, and the schema-4 migration (no BRIN on ts) of an existing database."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.store import open_store
from twinlib.store import postgres as pgmod
from twinlib.store.base import SchemaVersionError
from twinlib.store.sqlite import _log_entries

from pg_support import tail_ids

T0 = 1_770_000_000_000


def _frame(asset: str, n: int, start: int = T0, seed: int = 0, label: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"asset_id": asset, "ts": start + np.arange(n, dtype=np.int64) * 1000,
                       "x": rng.normal(size=n).round(3), "y": rng.normal(size=n).round(3)})
    if label:
        df["label"] = np.where(rng.random(n) < 0.3, "wear", None)
    return df


def _log(st) -> list[tuple]:
    return st.conn.execute("SELECT asset, lo, hi, ts_lo, ts_hi, mono FROM ingest_log "
                           "ORDER BY asset, hi").fetchall()


def test_log_block_makes_the_entries_sqlite_makes():
    rng = np.random.default_rng(3)
    for m in (1, 255, 256, 257, 1000):
        ids = rng.permutation(m).astype(np.int64) + 50 if m % 2 else np.arange(m, dtype=np.int64) + 9
        ats = np.sort(rng.integers(0, 10**9, m)).astype(np.int64)
        cols = pgmod._log_block(7, ids, ats, 123)
        assert [tuple(int(v) for v in c) for c in cols.T] == _log_entries(7, ids, ats, 123)


def test_binary_records_with_and_without_labels_read_back_exactly(pg_url):
    import psycopg
    rng = np.random.default_rng(1)
    n = 300
    ts = T0 + np.arange(n, dtype=np.int64)
    ids = np.arange(n, dtype=np.int64) + 1
    mat = rng.normal(size=(n, 3))
    mat[5, 1] = np.nan
    cases = {"mixed": np.where(rng.random(n) < 0.5, -1, 4), "none": None,
             "all_null": np.full(n, -1), "all_set": np.full(n, 2)}
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TEMP TABLE t (asset integer, ts bigint, id bigint, label smallint, vals bytea)")
        for name, lab in cases.items():
            c.execute("TRUNCATE t")
            with c.cursor().copy("COPY t FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(pgmod._copy_binary(3, ts, ids, lab, mat))
            rows = c.execute("SELECT asset, ts, id, label, vals FROM t ORDER BY id").fetchall()
            assert [r[1] for r in rows] == ts.tolist(), name
            assert {r[0] for r in rows} == {3}
            want = [None] * n if lab is None else [None if v < 0 else int(v) for v in lab]
            assert [r[3] for r in rows] == want, name
            got = np.array([np.frombuffer(r[4], dtype="<f8") for r in rows])
            np.testing.assert_array_equal(got, mat)


def test_a_load_mixing_appends_and_duplicates_keeps_first_copies_and_counts(pg_url):
    a, b = _frame("a", 500, seed=1), _frame("b", 500, seed=2)
    with open_store(pg_url, create=True) as st:
        st.load_readings(a.iloc[:300])
        again = a.iloc[250:].copy()            # 50 stored already (10 of them with new values) + 200 new
        again.iloc[:10, again.columns.get_loc("x")] += 1.0
        res = st.load_readings(pd.concat([b, again]).sample(frac=1, random_state=4))
        assert (res.inserted, res.duplicates, res.conflicts) == (700, 50, 10)
        assert st.window(asset="a")["x"].tolist() == a["x"].tolist()
        assert st.window(asset="b")["y"].tolist() == b["y"].tolist()
        assert sorted(tail_ids(st, 700)) == sorted(st.window()["id"].tolist())
        assert len(set(tail_ids(st, 700))) == 1000
        # a repeated instant inside one load: the first one offered is kept
        dup = pd.concat([_frame("c", 3, seed=5), _frame("c", 3, seed=6)])
        res = st.load_readings(dup)
        assert (res.inserted, res.duplicates, res.conflicts) == (3, 3, 3)
        assert st.window(asset="c")["x"].tolist() == dup["x"].iloc[:3].tolist()


def test_a_lost_race_falls_back_to_staging_without_losing_or_doubling(pg_url, monkeypatch):
    """Another writer stored some of these instants after the append check: the COPY hits the
    primary key, is rolled back to its savepoint, and the chunk is staged instead."""
    df = _frame("a", 400, seed=7)
    with open_store(pg_url, create=True) as st:
        st.load_readings(df.iloc[100:200])
        calls = []
        real = st._not_appends

        def blind(firsts):
            calls.append(real(firsts))
            return set()                       # "nothing stored after these": wrong on purpose
        monkeypatch.setattr(st, "_not_appends", blind)
        res = st.load_readings(df)
        assert calls and calls[0]               # the real check would have staged it
        assert (res.inserted, res.duplicates, res.conflicts) == (300, 100, 0)
        assert st.window(asset="a")["ts"].tolist() == df["ts"].tolist()
        assert len(tail_ids(st, 700)) == 400 == len(set(tail_ids(st, 700)))


@pytest.mark.parametrize("atomic", [True, False])
def test_loads_larger_than_a_chunk_store_everything_once_with_a_log_entry_per_span(pg_url, monkeypatch, atomic):
    monkeypatch.setattr(pgmod, "_LOAD_ROWS", 700)
    monkeypatch.setattr(pgmod, "_TXN_ROWS", 700)
    monkeypatch.setattr(pgmod, "_SLICE_ROWS", 97)
    parts = [_frame(f"p{i}", 900, seed=i, label=i % 2 == 0) for i in range(3)]
    df = pd.concat(parts).sort_values("ts", kind="stable").reset_index(drop=True)
    with open_store(pg_url, create=True) as st:
        res = st.load_readings(df, atomic=atomic)
        assert (res.inserted, res.duplicates) == (2700, 0)
        ids = tail_ids(st, 700)
        assert len(ids) == 2700 == len(set(ids)) and ids == sorted(ids)
        w = st.window()
        for p in parts:
            got = w[w["asset_id"] == p["asset_id"].iloc[0]]
            assert got["x"].tolist() == p["x"].tolist()
            assert got["label"].tolist() == [None if v is None else v for v in
                                              (p["label"] if "label" in p else [None] * 900)]
        # ids follow the input order; each chunk's rows of an asset are logged per 256 in time order
        assert w.sort_values("id")["ts"].tolist() == df["ts"].tolist()
        log = _log(st)
        want = sum(-(-int((df["asset_id"].iloc[lo:lo + 700] == "p0").sum()) // 256)
                   for lo in range(0, 2700, 700))
        assert sum(1 for e in log if e[0] == st._by_id["p0"].key) == want == 4
        assert all(e[5] == 1 for e in log)


def test_a_schema_3_database_loses_its_brin_index_at_init_db_keeping_the_readings(pg_url):
    import psycopg
    df = _frame("a", 1000, seed=9)
    with open_store(pg_url, create=True) as st:
        st.load_readings(df)
        before = st.window()
    with psycopg.connect(pg_url, autocommit=True) as c:    # the schema-3 shape
        c.execute("CREATE INDEX readings_ts_brin ON readings USING brin (ts) WITH (pages_per_range = 32)")
        c.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        assert c.execute("SELECT to_regclass('readings_ts_brin') IS NOT NULL").fetchone()[0]
    with pytest.raises(SchemaVersionError):
        open_store(pg_url)
    with open_store(pg_url, create=True) as st:                # `twin init-db`
        assert st.schema_version() == pgmod.PG_SCHEMA_VERSION
        assert not st._raw.execute("SELECT to_regclass('readings_ts_brin') IS NOT NULL").fetchone()[0]
        n_idx = st._raw.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('readings')").fetchone()[0]
        assert n_idx == len(st._known_parts())                # one index per partition: the key
        pd.testing.assert_frame_equal(st.window(), before)
        res = st.load_readings(_frame("a", 10, start=T0 + 2_000_000))
        assert res.inserted == 10


def test_the_cursor_probes_each_log_entry_by_key_once_the_tables_have_statistics(pg_url):
    """after()'s plan: a nested loop of key probes, never a hash join over whole partitions (the
    plain join's plan as soon as ANALYZE had run, whatever the size — ~100x slower at 1M)."""
    with open_store(pg_url, create=True) as st:
        k = np.arange(8000)                     # 8 pumps at 1 Hz, interleaved, 6 values each
        rng = np.random.default_rng(11)
        df = pd.DataFrame({"asset_id": np.array([f"p{i}" for i in range(8)])[k % 8],
                           "ts": T0 + (k // 8) * 1000, "label": "healthy"})
        for s in ("temperature", "vibration", "pressure", "load", "speed", "ambient"):
            df[s] = rng.normal(50, 3, len(k)).round(2)
        st.load_readings(df)
        st._raw.execute("ANALYZE ingest_log")
        st._raw.execute("ANALYZE readings")
        top, h = st.max_id(), st.horizon()
        plan = "\n".join(r[0] for r in st.conn.execute(
            "EXPLAIN " + pgmod._AFTER_SQL.format(key_sql=""), (top - 1000, h, top - 1000, h, 1000)))
        day = pgmod._part_name(T0 // pgmod.PART_MS)          # the partition holding the rows
        assert "Nested Loop" in plan and "Hash Join" not in plan, plan
        assert f"Seq Scan on {day}" not in plan and f"Index Scan using {day}_pkey" in plan, plan
        assert [r.id for r in st.after(top - 1000, limit=1000)] == list(range(top - 999, top + 1))


def test_the_store_connections_never_jit_compile(pg_url):
    """JIT compiled the cursor's query for 45-500 ms per call once the history made its estimate
    pass jit_above_cost (its execution: ~1 ms); the store's sessions turn it off, read-only too,
    keeping options given in the URL."""
    with open_store(pg_url, create=True) as st, open_store(pg_url, readonly=True) as ro:
        for s in (st, ro):
            assert s._raw.execute("SHOW jit").fetchone()[0] == "off"
            # the URL's own options (the test schema's search_path) still apply
            assert s._raw.execute("SELECT current_schema()").fetchone()[0].startswith("i13_")
        assert ro._raw.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert st._raw.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
