"""The readings layout: any kind's signals, the live cursor, and the upgrade of a first-release database."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinlib.kinds import BUILTIN_KINDS
from twinlib.store import SchemaVersionError, open_store
from twinlib.store.sqlite import SCHEMA_VERSION
from twinlib.timeutil import now_ms

FIXTURE_V1 = Path(__file__).parent.parent / "fixtures" / "twin-v1.db"


def _frame(asset, n, signals, start=1_770_000_000_000, step=1000, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"asset_id": asset, "ts": start + np.arange(n, dtype=np.int64) * step})
    for s in signals:
        df[s] = rng.normal(10, 2, n).round(3)
    return df


def test_a_kind_with_eight_signals_round_trips_every_value(tmp_path):
    sig = BUILTIN_KINDS["skab-testbed"].names
    df = _frame("bed-1", 500, sig)
    df.loc[7, "Current"] = np.nan
    with open_store(tmp_path / "t.db", create=True) as st:
        assert st.load_readings(df, kind="skab-testbed").inserted == 500
        assert st.asset("bed-1")["signals"] == list(sig)
        assert st.asset("bed-1")["kind"] == "skab-testbed"
        back = st.window(asset="bed-1")
        for s in sig:
            np.testing.assert_array_equal(back[s].to_numpy(), df[s].to_numpy())
        r = st.latest(1, asset="bed-1")[0]
        assert r.values == {s: df[s].iloc[-1] for s in sig} and r.kind == "skab-testbed"
        assert st.latest(1, asset="bed-1", until=int(df["ts"].iloc[7]))[0].values["Current"] is None


def test_a_new_signal_is_appended_to_the_layout_and_old_readings_read_as_absent(tmp_path):
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(_frame("a", 10, ["x"]))
        st.load_readings(_frame("a", 10, ["x", "y"], start=1_770_000_100_000))
        assert st.asset("a")["signals"] == ["x", "y"]
        w = st.window(asset="a")
        assert w["y"].iloc[:10].isna().all() and w["y"].iloc[10:].notna().all()
        assert st.latest(20, asset="a")[-1].values == {"x": w["x"].iloc[0], "y": None}


def test_duplicates_are_kept_once_and_differing_values_are_counted(tmp_path):
    df = _frame("a", 100, ["x"])
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(df)
        again = df.copy()
        again.loc[:9, "x"] += 1.0
        res = st.load_readings(again)
        assert (res.inserted, res.duplicates, res.conflicts) == (0, 100, 10)
        assert st.window(asset="a")["x"].tolist() == df["x"].tolist()


def test_after_returns_every_row_exactly_once_in_id_order_whatever_the_load_pattern(tmp_path):
    rng = np.random.default_rng(5)
    parts = [_frame(f"p{i}", 3000, ["t", "v"], seed=i) for i in range(4)]
    df = pd.concat(parts).sample(frac=1, random_state=1).reset_index(drop=True)
    with open_store(tmp_path / "t.db", create=True) as st:
        pos = 0
        while pos < len(df):
            n = int(rng.integers(1, 2500))
            st.load_readings(df.iloc[pos:pos + n])
            pos += n
        ids = [r.id for r in st.after(0, limit=10**7)]
        assert len(ids) == len(df) == len(set(ids)) and ids == sorted(ids)
        for _ in range(40):
            c, lim = int(rng.integers(0, ids[-1])), int(rng.integers(1, 4000))
            assert [r.id for r in st.after(c, limit=lim)] == [i for i in ids if i > c][:lim]
        one = [r.id for r in st.after(0, asset="p2", limit=10**7)]
        assert len(one) == 3000 and one == sorted(one)
        seen, cur = [], 0
        while page := st.after(cur, limit=613):
            seen += [r.id for r in page]
            cur = page[-1].id
        assert seen == ids


def test_a_bulk_load_is_logged_in_short_entries_so_after_never_walks_the_whole_import(tmp_path):
    from twinlib.store.sqlite import _LOG_SPAN
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(_frame("a", 1000, ["x"]))
        entries = st.conn.execute("SELECT lo, hi, ts_lo, ts_hi, mono FROM ingest_log ORDER BY lo").fetchall()
        assert len(entries) == -(-1000 // _LOG_SPAN)
        assert all(hi - lo + 1 <= _LOG_SPAN and mono == 1 for lo, hi, _, _, mono in entries)
        assert entries[0][0] == 1 and entries[-1][1] == 1000  # they tile the load's ids
        assert all(a[1] + 1 == b[0] and a[3] < b[2] for a, b in zip(entries, entries[1:]))
        assert [r.id for r in st.after(990)] == list(range(991, 1001))


def test_the_fleet_latest_is_never_stale_after_a_write_by_this_or_another_connection(tmp_path):
    path = tmp_path / "t.db"
    with open_store(path, create=True) as writer:
        writer.load_readings(_frame("a", 5, ["x"]))
        with open_store(path, readonly=True) as reader:
            assert [r.ts for r in reader.latest(2)] == [1_770_000_004_000, 1_770_000_003_000]
            first = reader.latest(2)
            first[0].values["x"] = -1.0  # callers own what they get: the next answer is untouched
            assert reader.latest(2)[0].values["x"] != -1.0
            writer.load_readings(_frame("b", 1, ["x"], start=1_770_000_009_000))  # another connection
            assert [(r.asset_id, r.ts) for r in reader.latest(2)] == [("b", 1_770_000_009_000),
                                                                      ("a", 1_770_000_004_000)]
            writer.load_readings(_frame("a", 1, ["x", "y"], start=1_770_000_010_000))  # new signal too
            top = reader.latest(1)[0]
            assert (top.asset_id, top.ts) == ("a", 1_770_000_010_000) and "y" in top.values
        writer.load_readings(_frame("c", 1, ["x"], start=1_770_000_011_000))  # this connection
        assert writer.latest(1)[0].asset_id == "c"


def test_a_cursor_older_than_the_pruned_log_still_sees_everything(tmp_path):
    with open_store(tmp_path / "t.db", create=True) as st:
        for k in range(5):
            st.load_readings(_frame("a", 100, ["x"], start=1_770_000_000_000 + k * 100_000))
        # every entry but the newest is older than a minute from now (`now` explicit: an entry
        # written in the same millisecond as the call is not older than it)
        assert st.prune_ingest_log(keep_ms=0, now=now_ms() + 60_000) == 4
        assert [r.id for r in st.after(0, limit=10**6)] == list(range(1, 501))
        assert [r.id for r in st.after(250, limit=100)] == list(range(251, 351))


def test_a_first_release_database_is_upgraded_in_place_with_nothing_lost(tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE_V1, db)
    con = sqlite3.connect(db)
    old = con.execute("SELECT id, asset_id, ts, temperature, vibration, pressure, label, load, "
                      "speed, ambient FROM readings ORDER BY id").fetchall()
    old_alerts = con.execute("SELECT * FROM alerts ORDER BY id").fetchall()
    old_meta = dict(con.execute("SELECT key, value FROM meta WHERE key != 'schema_version'"))
    con.close()
    with pytest.raises(SchemaVersionError, match="init-db"):
        open_store(db)
    with open_store(db, create=True) as st:  # what `twin init-db` does
        assert st.schema_version() == SCHEMA_VERSION
        got = {r.id: r for r in st.after(0, limit=10**7)}
        assert len(got) == len(old)
        for rid, aid, ts, *vals, label, load, speed, ambient in [
                (o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9]) for o in old]:
            r = got[rid]
            assert (r.asset_id, r.ts, r.label) == (aid, ts, label)
            assert [r.temperature, r.vibration, r.pressure, r.load, r.speed, r.ambient] == \
                [*vals, load, speed, ambient]
        assert sorted(tuple(a.values())[:15] for a in st.list_alerts(limit=None)) \
            == [tuple(a) for a in old_alerts]
        for k, v in old_meta.items():
            assert st.get_meta(k) == v
        n = st.max_id()
        st.load_readings(_frame("pump-01", 3, ["temperature"], start=2_000_000_000_000))
        assert [r.id for r in st.after(n)] == [n + 1, n + 2, n + 3]
    with open_store(db, create=True) as st:  # idempotent
        assert st.count() == len(old) + 3


def test_bytes_per_pump_reading_stay_under_80(tmp_path, fleet):
    db = tmp_path / "size.db"
    with open_store(db, create=True) as st:
        st.load_readings(fleet.readings)
        st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n = st.count()
    assert n > 30_000
    per = db.stat().st_size / n
    assert per <= 80, f"{per:.1f} bytes per pump reading"
