"""SQLite's bulk-load path (`load_readings`): one run per asset, packed values bound as bytearrays,
labels bound / NULL / NULLIF by statement, a vectorised ingest log. Every guarantee of the
row-by-row way it replaced: each value and label back as offered, ids in input order, the first
copy of a reading kept, conflicts counted, all or nothing."""
from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from twinlib.store import open_store
from twinlib.store import sqlite as S


def _frame(assets, n, signals=("x", "y"), start=1_770_000_000_000, seed=0):
    """``n`` readings per asset, 1 s apart, time-major (as a fleet arrives), then shuffled."""
    rng = np.random.default_rng(seed)
    ts = np.repeat(start + np.arange(n, dtype=np.int64) * 1000, len(assets))
    df = pd.DataFrame({"asset_id": np.tile(list(assets), n), "ts": ts})
    for s in signals:
        df[s] = rng.normal(10, 2, len(df)).round(3)
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def _log_entries_reference(key, ids, ats, stamp, span=S._LOG_SPAN):
    """The loop the vectorised ingest log replaced, kept as the definition."""
    out = []
    for j in range(0, len(ids), span):
        sub_ids, sub_ts = ids[j:j + span], ats[j:j + span]
        out.append((int(sub_ids.max()), int(sub_ids.min()), int(key), int(sub_ts[0]), int(sub_ts[-1]),
                    int(stamp), int(bool(np.all(np.diff(sub_ids) > 0)))))
    return out


@pytest.mark.parametrize("m", [0, 1, 2, 3, 8, 9, 255, 256, 257, 513, 1000])
def test_the_vectorised_ingest_log_equals_the_loop_it_replaced(m):
    rng = np.random.default_rng(m)
    ats = np.sort(rng.integers(0, 10**9, m))
    for ids in (np.arange(m) * 12 + 5, rng.permutation(m) + 100):  # rising, and shuffled
        ids = np.asarray(ids, dtype=np.int64)
        got = S._log_entries(7, ids, ats, 123)
        assert got == _log_entries_reference(7, ids, ats, 123)
        assert all(type(v) is int for row in got for v in row)  # bound as plain ints


def test_statement_sizes_cover_every_row_with_few_statement_texts():
    seen = set()
    for m in range(0, 4 * S._ROWS_PER_STATEMENT + 3):
        sizes = S._statement_sizes(m)
        assert sum(sizes) == m
        assert len(sizes) <= m // S._ROWS_PER_STATEMENT + S._ROWS_PER_STATEMENT.bit_length()
        seen.update(sizes)
    assert seen == {S._ROWS_PER_STATEMENT} | {1 << k for k in range(S._ROWS_PER_STATEMENT.bit_length())}


def test_a_large_shuffled_load_is_stored_exactly_with_ids_in_input_order(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_PIECE_ROWS", 1000)  # many pieces and odd statement sizes per asset
    df = _frame(["p1", "p2", "p3"], 2345)
    with open_store(tmp_path / "t.db", create=True) as st:
        res = st.load_readings(df)
        assert (res.inserted, res.duplicates, res.conflicts) == (len(df), 0, 0)
        back = st.window()
        assert back["ts"].is_monotonic_increasing
        key = back.set_index(["asset_id", "ts"])
        want = df.assign(id=np.arange(1, len(df) + 1)).set_index(["asset_id", "ts"]).loc[key.index]
        np.testing.assert_array_equal(key["id"].to_numpy(), want["id"].to_numpy())
        for s in ("x", "y"):
            np.testing.assert_array_equal(key[s].to_numpy(), want[s].to_numpy())
        assert st.max_id() == len(df)
        assert [r.id for r in st.after(0, limit=10**6)] == list(range(1, len(df) + 1))


def test_the_first_offered_of_two_readings_at_one_instant_is_kept_and_the_other_counted(tmp_path):
    df = _frame(["a", "b"], 3000, seed=1)
    twins = df.iloc[[10, 500, 2000]].copy()
    twins["x"] += 1.0  # same asset and time, other values: offered after the originals
    df2 = pd.concat([df, twins], ignore_index=True)
    with open_store(tmp_path / "t.db", create=True) as st:
        res = st.load_readings(df2)
        assert (res.inserted, res.duplicates, res.conflicts) == (len(df), 3, 3)
        back = st.window().set_index(["asset_id", "ts"])
        for _, row in twins.iterrows():
            assert back.loc[(row["asset_id"], row["ts"]), "x"] == row["x"] - 1.0
        again = st.load_readings(df2)  # everything stored: the 3 twins still differ from it
        assert (again.inserted, again.duplicates, again.conflicts) == (0, len(df2), 3)


def test_conflicts_compare_values_with_nan_equal_to_nan_and_a_shorter_old_layout(tmp_path):
    df = _frame(["a"], 50, signals=("x",), seed=2).sort_values("ts", ignore_index=True)
    df.loc[3, "x"] = np.nan
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(df)
        same = st.load_readings(df)  # NaN where NaN was: not a conflict
        assert (same.inserted, same.duplicates, same.conflicts) == (0, 50, 0)
        wider = df.assign(y=np.nan)
        wider.loc[[5, 6], "y"] = 1.0  # a value the stored (shorter) readings do not hold
        wider.loc[7, "x"] = np.nan    # a value taken away
        res = st.load_readings(pd.concat([wider, df.assign(ts=df["ts"] + 10**6, y=2.0)]))
        assert (res.inserted, res.duplicates, res.conflicts) == (50, 50, 3)
        assert st.asset("a")["signals"] == ["x", "y"]


def test_labels_of_every_pattern_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_PIECE_ROWS", 700)  # pieces all-labelled, unlabelled, and mixed
    n = 3000
    df = _frame(["a"], n, seed=3).sort_values("ts", ignore_index=True)
    lab = np.array(["healthy", "leak", "sensor_stuck"], dtype=object)[np.arange(n) % 3]
    lab[:900] = None                  # pieces with no label (bound as the literal NULL)
    lab[1400:2100:4] = None           # mixed pieces (NULLIF)
    df["label"] = pd.array(lab, dtype="str")
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(df)
        got = st.window(asset="a")["label"].tolist()
        assert [None if pd.isna(v) else v for v in got] == [None if v is None else v for v in lab]
        assert st.conn.execute("SELECT COUNT(*) FROM readings WHERE label IS NULL").fetchone()[0] \
            == sum(v is None for v in lab)
        assert st.latest(1, asset="a", until=int(df["ts"].iloc[0]))[0].label is None
        assert st.latest(1, asset="a")[0].label == lab[-1]


def test_a_failed_load_stores_nothing_spends_no_id_and_restores_the_page_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_PIECE_ROWS", 500)
    df = _frame(["a", "b"], 30_000, seed=4)
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(_frame(["a"], 5, start=1_700_000_000_000))
        cache = st.conn.execute("PRAGMA cache_size").fetchone()[0]
        real, calls = S.SQLiteStore._insert_rows, []

        def failing(self, *args):
            calls.append(1)
            if len(calls) == 40:
                raise OSError("disk on fire")
            return real(self, *args)

        monkeypatch.setattr(S.SQLiteStore, "_insert_rows", failing)
        with pytest.raises(OSError, match="disk on fire"):
            st.load_readings(df)
        assert len(calls) == 40
        assert st.count() == 5 and st.max_id() == 5
        assert st.conn.execute("SELECT COUNT(*) FROM ingest_log").fetchone()[0] == 1
        assert st.conn.execute("PRAGMA cache_size").fetchone()[0] == cache
        monkeypatch.setattr(S.SQLiteStore, "_insert_rows", real)
        res = st.load_readings(df)
        assert res.inserted == len(df) and st.max_id() == 5 + len(df)
        assert st.conn.execute("PRAGMA cache_size").fetchone()[0] == cache  # back after success too


def test_a_big_load_runs_with_the_bulk_page_cache(tmp_path, monkeypatch):
    seen = []
    real = S.SQLiteStore._insert_rows

    def spy(self, *args):
        seen.append(self.conn.execute("PRAGMA cache_size").fetchone()[0])
        return real(self, *args)

    monkeypatch.setattr(S.SQLiteStore, "_insert_rows", spy)
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(_frame(["a"], 100))
        st.load_readings(_frame(["a"], S._BULK_CACHE_MIN_ROWS, start=1_780_000_000_000))
    assert seen[0] == -2000 and set(seen[1:]) == {-S._BULK_CACHE_KIB}


def test_progress_counts_every_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(S, "_PIECE_ROWS", 1000)
    ticks = []
    import tqdm

    class Bar(tqdm.tqdm):
        def update(self, n=1):
            ticks.append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    df = _frame(["a", "b"], 2500, seed=5)
    with open_store(tmp_path / "t.db", create=True) as st:
        assert st.load_readings(df, progress=True).inserted == len(df)
    assert sum(ticks) == len(df) and len(ticks) == 6


def test_a_database_written_row_by_row_reads_the_same_as_one_bulk_loaded(tmp_path):
    """The on-disk format did not change: rows written the first release's way (one tuple per
    reading, values as bytes, labels as None) and by the bulk path are byte for byte equal."""
    df = _frame(["a", "b"], 400, seed=6)
    df["label"] = pd.array(np.where(np.arange(len(df)) % 5 == 0, None, "healthy"), dtype="str")
    with open_store(tmp_path / "bulk.db", create=True) as st:
        st.load_readings(df)
    with open_store(tmp_path / "rows.db", create=True) as st:
        with st.transaction():
            st._register("a", "pump", ["x", "y"])
            st._register("b", "pump", ["x", "y"])
            code = st._label_codes(["healthy"])["healthy"]
            key = {"a": st._by_id["a"].key, "b": st._by_id["b"].key}
            for i, r in enumerate(df.itertuples(index=False)):
                st.conn.execute("INSERT INTO readings (asset, ts, id, label, vals) VALUES (?, ?, ?, ?, ?)",
                                (key[r.asset_id], int(r.ts), i + 1, None if pd.isna(r.label) else code,
                                 np.array([r.x, r.y], dtype="<f8").tobytes()))
    rows = []
    for name in ("bulk.db", "rows.db"):
        con = sqlite3.connect(tmp_path / name)
        rows.append(con.execute("SELECT asset, ts, id, label, typeof(label), vals, typeof(vals) "
                                "FROM readings ORDER BY asset, ts").fetchall())
        con.close()
    assert rows[0] == rows[1] and len(rows[0]) == len(df)


def test_a_load_that_commits_as_it_goes_stores_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_CHUNK_ROWS", 1000)  # atomic=False: one transaction per 1,000 rows
    df = _frame(["a", "b", "c"], 1234, seed=7)
    commits = []
    with open_store(tmp_path / "t.db", create=True) as st:
        st.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        res = st.load_readings(df, atomic=False)
        st.conn.set_trace_callback(None)
        assert res.inserted == len(df) and len(commits) == 4
        back = st.window().set_index(["asset_id", "ts"])
        want = df.assign(id=np.arange(1, len(df) + 1)).set_index(["asset_id", "ts"]).loc[back.index]
        np.testing.assert_array_equal(back["id"].to_numpy(), want["id"].to_numpy())
        np.testing.assert_array_equal(back["x"].to_numpy(), want["x"].to_numpy())
        assert [r.id for r in st.after(0, limit=10**6)] == list(range(1, len(df) + 1))


# -- big loads: parameters built on a helper thread, the WAL synced as it grows, the checkpoint
# run (and timed) right after the commit -------------------------------------------------------
def _threads(name="twinlib-"):
    import threading
    return [t.name for t in threading.enumerate() if t.name.startswith(name)]


def _rows_and_log(path):
    con = sqlite3.connect(path)
    rows = con.execute("SELECT asset, ts, id, label, typeof(label), vals FROM readings "
                       "ORDER BY asset, ts").fetchall()
    log = con.execute("SELECT hi, lo, asset, ts_lo, ts_hi, mono FROM ingest_log ORDER BY hi").fetchall()
    con.close()
    return rows, log


def test_a_pipelined_load_writes_what_a_load_on_one_thread_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_PIECE_ROWS", 700)
    df = _frame(["a", "b", "c"], 3000, seed=8)
    df["label"] = pd.array(np.where(np.arange(len(df)) % 7 == 0, None, "healthy"), dtype="str")
    got = {}
    for name, threshold in (("one", 10**9), ("pipe", 1)):
        monkeypatch.setattr(S, "_BULK_MIN_ROWS", threshold)
        with open_store(tmp_path / f"{name}.db", create=True) as st:
            res = st.load_readings(df)
            assert st.last_load_profile["pipelined"] is (name == "pipe")
            assert (res.inserted, res.duplicates, res.conflicts) == (len(df), 0, 0)
        got[name] = _rows_and_log(tmp_path / f"{name}.db")
    assert got["one"] == got["pipe"] and len(got["one"][0]) == len(df)
    assert not _threads()


def test_an_error_on_the_helper_thread_is_raised_here_and_stores_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_PIECE_ROWS", 500)
    monkeypatch.setattr(S, "_BULK_MIN_ROWS", 1)
    real, calls = S._piece, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 7:
            raise MemoryError("no room for piece 7")
        return real(*args)

    df = _frame(["a", "b"], 5000, seed=9)
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(_frame(["a"], 5, start=1_700_000_000_000))
        auto = st.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        monkeypatch.setattr(S, "_piece", failing)
        with pytest.raises(MemoryError, match="piece 7"):
            st.load_readings(df)
        assert st.count() == 5 and st.max_id() == 5 and not st.conn.in_transaction
        assert st.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == auto
        assert not _threads()
        monkeypatch.setattr(S, "_piece", real)
        assert st.load_readings(df).inserted == len(df)


def test_an_error_on_this_thread_stops_the_helpers(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_BULK_MIN_ROWS", 1)
    monkeypatch.setattr(S, "_PIECE_ROWS", 300)
    monkeypatch.setattr(S, "_PREFETCH_DEPTH", 1)  # the helper waits on a full queue when it happens
    real, calls = S.SQLiteStore._insert_rows, []

    def failing(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *args)

    monkeypatch.setattr(S.SQLiteStore, "_insert_rows", failing)
    with open_store(tmp_path / "t.db", create=True) as st:
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            st.load_readings(_frame(["a", "b"], 3000, seed=10))
        assert st.count() == 0 and st.max_id() == 0
    assert not _threads()


def test_a_big_load_is_in_the_main_file_when_it_returns(tmp_path, monkeypatch):
    """The checkpoint SQLite's auto-checkpoint would run inside the COMMIT runs right after it:
    a copy of the main file alone (no -wal) holds the load; the setting is back after."""
    import shutil
    monkeypatch.setattr(S, "_BULK_MIN_ROWS", 1000)
    monkeypatch.setattr(S, "_WAL_SYNC_BYTES", 64 << 10)  # sync the WAL often
    df = _frame(["a", "b"], 4000, seed=11)
    with open_store(tmp_path / "t.db", create=True) as st:
        st.conn.execute("PRAGMA wal_autocheckpoint=20")  # pages: less than this load writes
        statements = []
        st.conn.set_trace_callback(statements.append)
        st.load_readings(df)
        st.conn.set_trace_callback(None)
        assert statements[-1] == "PRAGMA wal_checkpoint(PASSIVE)"  # after the COMMIT
        assert statements.index("COMMIT") < len(statements) - 1
        prof = st.last_load_profile
        assert prof["wal_syncs"] >= 0 and prof["checkpoint_wall_s"] >= 0  # (syncs: see below)
        assert prof["wall_s"] >= prof["write_wall_s"] and prof["cpu_s"] > 0
        assert st.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 20
        shutil.copy(tmp_path / "t.db", tmp_path / "copy.db")
    con = sqlite3.connect(tmp_path / "copy.db")
    assert con.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == len(df)
    con.close()


def test_a_load_smaller_than_the_auto_checkpoint_leaves_the_checkpoint_to_sqlite(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_BULK_MIN_ROWS", 1000)
    with open_store(tmp_path / "t.db", create=True) as st:
        statements = []
        st.conn.set_trace_callback(statements.append)
        st.load_readings(_frame(["a"], 5000, seed=14))  # ~200 KB of WAL: under 1,000 pages
        st.conn.set_trace_callback(None)
        assert not any("wal_checkpoint" in s or "wal_autocheckpoint=" in s for s in statements)
        assert st.last_load_profile["pipelined"] and "checkpoint_wall_s" not in st.last_load_profile


def test_a_connection_that_does_not_checkpoint_is_not_checkpointed(tmp_path, monkeypatch):
    import shutil
    monkeypatch.setattr(S, "_BULK_MIN_ROWS", 1000)
    df = _frame(["a"], 5000, seed=12)
    with open_store(tmp_path / "t.db", create=True) as st:
        st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema into the main file
        st.conn.execute("PRAGMA wal_autocheckpoint=0")
        statements = []
        st.conn.set_trace_callback(statements.append)
        st.load_readings(df)
        st.conn.set_trace_callback(None)
        assert not any("wal_checkpoint" in s for s in statements)
        assert st.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        shutil.copy(tmp_path / "t.db", tmp_path / "copy.db")  # the load is in the -wal only
        assert "checkpoint_wall_s" not in st.last_load_profile
    con = sqlite3.connect(tmp_path / "copy.db")
    assert con.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 0
    con.close()


def test_a_big_load_inside_a_callers_transaction_commits_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_BULK_MIN_ROWS", 1000)
    df = _frame(["a", "b"], 2000, seed=13).assign(label="first-seen")
    with open_store(tmp_path / "t.db", create=True) as st:
        with pytest.raises(RuntimeError, match="changed my mind"):
            with st.transaction():
                assert st.load_readings(df).inserted == len(df)
                assert st.conn.in_transaction and st.count() == len(df)
                raise RuntimeError("changed my mind")
        assert st.count() == 0 and st.max_id() == 0
        assert st.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        with st.transaction():  # the rolled-back assets and label are registered again
            st.load_readings(df)
        assert st.count() == len(df) and st.asset_ids() == ["a", "b"]
        assert set(st.window()["label"]) == {"first-seen"}


def test_the_wal_syncer_syncs_the_wal_each_time_enough_was_written(tmp_path):
    import time
    with open_store(tmp_path / "t.db", create=True) as st:
        with S._WalFlusher(st.conn) as f:
            assert _threads("twinlib-wal-sync")
            f.wrote(S._WAL_SYNC_BYTES - 1)
            f.wrote(1)  # due: the syncer wakes
            deadline = time.monotonic() + 60
            while f.syncs < 1 and time.monotonic() < deadline:  # wait for it, however busy
                time.sleep(0.005)
            assert f.syncs == 1
        assert not _threads()


def test_the_wal_syncer_is_a_no_op_without_a_wal_file():
    con = sqlite3.connect(":memory:")
    with S._WalFlusher(con) as f:
        f.wrote(1 << 30)
    assert f.syncs == 0 and not _threads()
    con.close()
