"""A bulk load into days without a partition builds those partitions itself: rows copied into a
plain table, the primary key built once at ATTACH PARTITION, all in the load's
transaction — and everything else still holds: first copies kept, duplicates and conflicts
counted, the cursor sees every row once, a rollback leaves nothing behind, and writers and readers
of other days go on meanwhile."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.store import open_store
from twinlib.store import postgres as pgmod

from pg_support import tail_ids

DAY = pgmod.PART_MS
T0 = (1_770_000_000_000 // DAY) * DAY          # a midnight, long past: no partition yet


def _fleet(n: int, start: int, seed: int, assets: int = 3, step: int = 60_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    return pd.DataFrame({"asset_id": np.array([f"f{i}" for i in range(assets)])[k % assets],
                         "ts": start + (k // assets) * step,
                         "x": rng.normal(size=n).round(3), "y": rng.normal(size=n).round(3),
                         "label": np.where(rng.random(n) < 0.2, "wear", None)})


def _built_here(st) -> set[str]:
    """Partitions made by the new-day path (they carry the range as a CHECK constraint)."""
    return {r[0] for r in st._raw.execute(
        "SELECT c.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
        "JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = to_regclass('readings') "
        "AND k.contype = 'c' AND k.conname = c.relname || '_range'")}


@pytest.fixture
def small_days(monkeypatch):
    monkeypatch.setattr(pgmod, "_NEW_DAY_ROWS", 100)
    monkeypatch.setattr(pgmod, "_LOAD_ROWS", 1000)
    monkeypatch.setattr(pgmod, "_SLICE_ROWS", 97)


def test_new_days_are_built_with_their_key_and_read_back_like_any_load(pg_url, small_days):
    df = _fleet(3000, T0 + DAY // 2, seed=1)          # 1000 minutes of 3 assets: days 0, 1
    with open_store(pg_url, create=True) as st:
        st.load_readings(df.iloc[:90])                  # day 0 exists now (a small load: as before)
        assert _built_here(st) == set()
        res = st.load_readings(df)                      # 90 stored already, 3 chunks, day 1 new
        assert (res.inserted, res.duplicates, res.conflicts) == (2910, 90, 0)
        day1 = pgmod._part_name(T0 // DAY + 1)
        assert _built_here(st) == {day1}
        assert st._raw.execute(f"SELECT to_regclass('{day1}_pkey') IS NOT NULL").fetchone()[0]
        w = st.window()
        for a in ("f0", "f1", "f2"):
            want = df[df["asset_id"] == a]
            got = w[w["asset_id"] == a]
            assert got["ts"].tolist() == want["ts"].tolist()
            assert got["x"].tolist() == want["x"].tolist()
            assert got["label"].tolist() == want["label"].tolist()
        ids = tail_ids(st)
        assert len(ids) == 3000 == len(set(ids)) and ids == sorted(ids)
        assert [r.ts for r in st.latest(3)] == [int(df["ts"].iloc[-1])] * 3
        # the key is there and enforced: loading it all again stores nothing twice
        again = st.load_readings(df)
        assert (again.inserted, again.duplicates) == (0, 3000)
        assert len(st.window()) == 3000


def test_repeated_instants_in_a_new_day_keep_the_first_copy_and_count_conflicts(pg_url, small_days):
    df = _fleet(600, T0, seed=2)
    twice = df.iloc[:150].copy()
    twice.loc[twice.index[:40], "x"] += 1.0             # 40 of the repeats carry other values
    with open_store(pg_url, create=True) as st:
        res = st.load_readings(pd.concat([df, twice]))
        assert (res.inserted, res.duplicates, res.conflicts) == (600, 150, 40)
        assert _built_here(st) == {pgmod._part_name(T0 // DAY)}
        w = st.window()
        assert w.sort_values("id")["x"].tolist() == df["x"].tolist()


def test_a_failed_load_leaves_no_partition_and_the_next_load_makes_it_again(pg_url, small_days):
    df = _fleet(900, T0 + 5 * DAY, seed=3)
    with open_store(pg_url, create=True) as st:
        with pytest.raises(RuntimeError, match="boom"):
            with st.transaction():
                st.load_readings(df)
                assert len(st.window()) == 900          # in, attached, inside the transaction
                raise RuntimeError("boom")
        assert st._known_parts().isdisjoint({T0 // DAY + 5}) and len(st.window()) == 0
        assert st.load_readings(df).inserted == 900
        assert len(st.window()) == 900 and len(tail_ids(st)) == 900


def test_readers_and_writers_of_other_days_go_on_while_a_bulk_load_is_in_flight(pg_url, small_days):
    live = _fleet(30, T0 + 20 * DAY, seed=4)
    with open_store(pg_url, create=True) as bulk, open_store(pg_url) as other, \
            open_store(pg_url, readonly=True) as reader:
        other.load_readings(live.iloc[:15])             # a day that exists (a small load)
        other.conn.execute("SET lock_timeout = '5s'")    # waiting on the bulk load would fail
        reader.conn.execute("SET lock_timeout = '5s'")
        with bulk.transaction():
            bulk.load_readings(_fleet(1500, T0 + 10 * DAY, seed=5))   # new days, attached, open
            assert other.load_readings(live.iloc[15:]).inserted == 15
            assert len(reader.window()) == 30            # the bulk rows are not visible yet
            # the cursor stops below the bulk load's id block, still in flight
            assert [r.id for r in reader.after(0, limit=100)] == list(range(1, 16))
        assert len(reader.window()) == 1530
        assert sorted(tail_ids(reader)) == sorted(reader.window()["id"].tolist())


def test_a_snapshot_older_than_the_bulk_load_never_sees_part_of_it(pg_url, small_days):
    """The load's rows in new days and in days that exist commit together for every reader: a
    REPEATABLE READ snapshot taken before the commit sees none of them after it (rows are not
    written frozen — frozen rows would show through the new partition to the old snapshot)."""
    with open_store(pg_url, create=True) as w, open_store(pg_url, readonly=True) as r:
        w.load_readings(_fleet(30, T0 + 50 * DAY, seed=9))            # day 50 exists now
        bulk = _fleet(1500, T0 + 50 * DAY + 1200 * 60_000, seed=10)   # rest of day 50, day 51 new
        r.conn.execute("BEGIN")
        assert r.count() == 30                                        # the snapshot is taken
        w.load_readings(bulk)
        assert _built_here(w) == {pgmod._part_name(T0 // DAY + 51)}
        assert r.count() == 30 and len(r.window()) == 30              # none of it
        r.conn.execute("COMMIT")
        assert r.count() == 1530


def test_a_multi_chunk_import_cuts_its_chunks_at_day_boundaries(pg_url, small_days, monkeypatch):
    """Chunks of 1,000 rows would cut each 720-row day (3 assets, 1 per minute... 240 minutes a
    day here) in two; cut at the days' starts instead, every day is built whole by ATTACH and no
    row of it is kept up row by row."""
    monkeypatch.setattr(pgmod, "PART_MS", 4 * 3_600_000)        # 4-hour "days": 240 minutes
    df = _fleet(3600, T0, seed=6)                                 # 5 such days of 720 rows
    built: dict[int, int] = {}
    real = pgmod.PostgresStore._copy_new_day

    def spy(self, day, parts):
        built[day] = sum(w.rows for w in parts)
        return real(self, day, parts)

    monkeypatch.setattr(pgmod.PostgresStore, "_copy_new_day", spy)
    with open_store(pg_url, create=True) as st:
        res = st.load_readings(df)
        assert res.inserted == 3600
        days = (df["ts"] // pgmod.PART_MS).value_counts().to_dict()
        assert built == days and set(days.values()) == {720}
        assert st.window()["x"].tolist() == df["x"].tolist()
        ids = tail_ids(st)
        assert len(ids) == 3600 == len(set(ids))
        assert st.window().sort_values("id")["ts"].tolist() == df["ts"].tolist()  # input order


def test_new_days_load_inside_a_repeatable_read_transaction(pg_url, small_days):
    """Under a caller's REPEATABLE READ transaction the new-day path works as in autocommit."""
    df = _fleet(600, T0 + 30 * DAY, seed=7)
    with open_store(pg_url, create=True) as st:
        known = _fleet(6, T0 + 40 * DAY, seed=8).assign(label="wear")
        st.load_readings(known)                        # assets and labels known before the snapshot
        st.conn.execute("BEGIN")                       # the callers' "one consistent snapshot"
        assert st.count() == 6
        res = st.load_readings(df)
        st.conn.execute("COMMIT")
        assert res.inserted == 600 and _built_here(st) == {pgmod._part_name(T0 // DAY + 30)}
        assert st.window(end=T0 + 31 * DAY)["x"].tolist() == df["x"].tolist()
