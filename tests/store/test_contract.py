"""The store contract, run against both backends (SQLite file and PostgreSQL URL).

The foundation's store tests are collected here a second time with this directory's ``store``
fixture, which is parametrised over the backends; the layout tests are repeated on ``db``."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from twinlib.kinds import BUILTIN_KINDS  # noqa: E402
from twinlib.store import StoreMissingError, open_store  # noqa: E402
from twinlib.timeutil import now_ms  # noqa: E402

from foundation.test_store import (  # noqa: E402,F401 (collected again, on both backends)
    test_asset_lookups_use_the_index,
    test_cursor_returns_only_what_is_new,
    test_downsample_matches_pandas,
    test_fault_events_round_trip_idempotently,
    test_late_readings_still_reach_the_cursor,
    test_latest_is_newest_first_and_filters,
    test_latest_per_asset_and_assets,
    test_loading_twice_keeps_one_copy,
    test_meta_values,
    test_nan_sensor_values_are_stored_as_null,
    test_readonly_store_refuses_writes,
    test_round_trip_keeps_every_value,
)


def _frame(asset, n, signals, start=1_770_000_000_000, step=1000, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"asset_id": asset, "ts": start + np.arange(n, dtype=np.int64) * step})
    for s in signals:
        df[s] = rng.normal(10, 2, n).round(3)
    return df


def test_the_backend_is_chosen_by_the_location(db, backend):
    with open_store(db, create=True) as st:
        assert st.backend == backend


def test_a_missing_database_is_an_error_and_creates_nothing(db):
    with pytest.raises(StoreMissingError, match="init-db"):
        open_store(db)
    with pytest.raises(StoreMissingError):
        open_store(db, readonly=True)
    with open_store(db, create=True) as st:  # still creatable afterwards
        assert st.count() == 0


def test_a_kind_with_eight_signals_round_trips_every_value(db):
    sig = BUILTIN_KINDS["skab-testbed"].names
    df = _frame("bed-1", 500, sig)
    df.loc[7, "Current"] = np.nan
    with open_store(db, create=True) as st:
        assert st.load_readings(df, kind="skab-testbed").inserted == 500
        assert st.asset("bed-1")["signals"] == list(sig)
        back = st.window(asset="bed-1")
        for s in sig:
            np.testing.assert_array_equal(back[s].to_numpy(), df[s].to_numpy())
        assert st.latest(1, asset="bed-1", until=int(df["ts"].iloc[7]))[0].values["Current"] is None


def test_a_new_signal_is_appended_and_old_readings_read_as_absent(db):
    with open_store(db, create=True) as st:
        st.load_readings(_frame("a", 10, ["x"]))
        st.load_readings(_frame("a", 10, ["x", "y"], start=1_770_000_100_000))
        assert st.asset("a")["signals"] == ["x", "y"]
        w = st.window(asset="a")
        assert w["y"].iloc[:10].isna().all() and w["y"].iloc[10:].notna().all()


def test_duplicates_are_kept_once_and_differing_values_are_counted(db):
    df = _frame("a", 100, ["x"])
    with open_store(db, create=True) as st:
        st.load_readings(df)
        again = df.copy()
        again.loc[:9, "x"] += 1.0
        res = st.load_readings(again)
        assert (res.inserted, res.duplicates, res.conflicts) == (0, 100, 10)
        assert st.window(asset="a")["x"].tolist() == df["x"].tolist()


def test_labels_absent_present_and_mixed_round_trip(db):
    n = 5000
    df = _frame("a", n, ["x"])
    lab = np.array(["healthy", "leak", "sensor_stuck"], dtype=object)[np.arange(n) % 3]
    lab[:2100] = None             # statements with no label at all
    lab[2600:3900:5] = None       # and with some
    df["label"] = pd.array(lab, dtype="str")
    with open_store(db, create=True) as st:
        st.load_readings(df)
        got = st.window(asset="a")["label"].tolist()
        assert [None if pd.isna(v) else v for v in got] == list(lab)
        assert [r.label for r in st.after(0, limit=10**6)] == list(lab)


def test_a_shuffled_fleet_load_keeps_every_value_with_ids_in_input_order(db):
    parts = [_frame(f"p{i}", 2501, ["t", "v"], seed=i) for i in range(3)]
    df = pd.concat(parts).sample(frac=1, random_state=2).reset_index(drop=True)
    with open_store(db, create=True) as st:
        assert st.load_readings(df).inserted == len(df)
        back = st.window().set_index(["asset_id", "ts"])
        want = df.set_index(["asset_id", "ts"]).loc[back.index]
        for s in ("t", "v"):
            np.testing.assert_array_equal(back[s].to_numpy(), want[s].to_numpy())
        first = int(back["id"].min())
        order = df.assign(pos=np.arange(len(df))).set_index(["asset_id", "ts"]).loc[back.index, "pos"]
        np.testing.assert_array_equal(back["id"].to_numpy() - first, order.to_numpy())


@pytest.mark.parametrize("missing", [None, np.nan])
def test_a_reading_without_an_asset_is_refused_whole_never_dropped(db, missing):
    df = _frame("a", 300, ["x"])
    df["asset_id"] = df["asset_id"].astype(object)
    df.loc[[7, 250], "asset_id"] = missing
    with open_store(db, create=True) as st:
        with pytest.raises(ValueError, match=r"2 reading\(s\) without an asset_id \(rows 7, 250\)"):
            st.load_readings(df)
        assert st.count() == 0


def test_after_returns_every_row_exactly_once_in_id_order_whatever_the_load_pattern(db):
    rng = np.random.default_rng(5)
    parts = [_frame(f"p{i}", 1500, ["t", "v"], seed=i) for i in range(4)]
    df = pd.concat(parts).sample(frac=1, random_state=1).reset_index(drop=True)
    with open_store(db, create=True) as st:
        pos = 0
        while pos < len(df):
            n = int(rng.integers(1, 1500))
            st.load_readings(df.iloc[pos:pos + n])
            pos += n
        ids = [r.id for r in st.after(0, limit=10**7)]
        assert len(ids) == len(df) == len(set(ids)) and ids == sorted(ids)
        for _ in range(20):
            c, lim = int(rng.integers(0, ids[-1])), int(rng.integers(1, 2000))
            assert [r.id for r in st.after(c, limit=lim)] == [i for i in ids if i > c][:lim]
        seen, cur = [], 0
        while page := st.after(cur, limit=613):
            seen += [r.id for r in page]
            cur = page[-1].id
        assert seen == ids


def test_a_cursor_older_than_the_pruned_log_still_sees_everything(db):
    with open_store(db, create=True) as st:
        for k in range(5):
            st.load_readings(_frame("a", 100, ["x"], start=1_770_000_000_000 + k * 100_000))
        # every entry but the newest is older than a minute from now (`now` explicit: an entry
        # written in the same millisecond as the call is not older than it)
        assert st.prune_ingest_log(keep_ms=0, now=now_ms() + 60_000) == 4
        assert [r.id for r in st.after(0, limit=10**6)] == list(range(1, 501))
        assert [r.id for r in st.after(250, limit=100)] == list(range(251, 351))


def test_alerts_keep_one_active_alarm_per_asset_and_rule(store):
    a = store.open_alert("pump-01", "threshold:temperature", "temperature", "warning", "hot", 1000)
    store.update_alert(a, last_seen=2000, peak_value=90.0, trigger_count=2)
    assert store.active_alerts("pump-01")[0]["trigger_count"] == 2
    row = store.acknowledge_alert(a, by="ann", at=1500)
    assert (row["acked"], row["acked_by"], row["acked_at"]) == (1, "ann", 1500)
    assert store.acknowledge_alert(a, by="bob")["acked_by"] == "ann"
    store.clear_alert(a, ended_at=3000)
    assert store.get_alert(a)["state"] == "cleared" and store.active_alerts() == []
    b = store.open_alert("pump-01", "threshold:temperature", "temperature", "critical", "hot", 4000)
    assert b != a and [x["id"] for x in store.list_alerts()] == [b, a]
