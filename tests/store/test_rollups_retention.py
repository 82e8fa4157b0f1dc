"""Rollups (1 min, 1 h) answer long downsampled windows exactly; retention forgets raw readings
and keeps the downsampled history. Both backends."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.store import open_store
from twinlib.store._rollups import HOUR_MS, parse_duration_ms

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def _frame(asset, start, n, step_ms, seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"asset_id": asset, "ts": start + np.arange(n, dtype=np.int64) * step_ms,
                       "t": rng.normal(50, 5, n), "v": rng.normal(1, 0.1, n)})
    df.loc[rng.choice(n, n // 20, replace=False), "v"] = np.nan
    return df


def _same(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    assert (a["bucket"].to_numpy() == b["bucket"].to_numpy()).all()
    assert (a["n"].to_numpy() == b["n"].to_numpy()).all()
    for c in a.columns[3:]:
        np.testing.assert_allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=1e-12, equal_nan=True)


def test_downsampling_from_rollups_equals_downsampling_raw_readings(db):
    with open_store(db, create=True) as st:
        st.load_readings(_frame("a", T0 + 1234, 3 * 3600 // 7 * 7, 7_000, 1))
        st.load_readings(_frame("b", T0, 5000, 2_000, 2))
        assert st.refresh_rollups() >= 2
        # a late backfill after the refresh: read raw until the next refresh, still exact
        st.load_readings(_frame("a", T0 + 3 * HOUR_MS, 100, 1_000, 3))
        for bucket_s, start, end in [(60, None, None), (300, T0 + 61_234, T0 + 3 * HOUR_MS + 50_000),
                                     (3600, None, None), (120, T0 - DAY, T0 + DAY)]:
            got = st.downsample(bucket_s, start, end)
            raw = st._downsample_raw(bucket_s, start, end)
            _same(got, raw)
        st.refresh_rollups()
        _same(st.downsample(60, asset="a"), st._downsample_raw(60, asset="a"))


def test_downsample_reads_the_rollups_not_the_raw_rows(db):
    with open_store(db, create=True) as st:
        st.load_readings(_frame("a", T0, 4 * 3600, 1_000, 4))
        st.refresh_rollups()
        calls = []
        orig = st._arrays
        st._arrays = lambda key, s, e: calls.append((s, e)) or orig(key, s, e)
        out = st.downsample(60, T0, T0 + 4 * HOUR_MS - 1, asset="a")
        assert len(out) == 240 and out["n"].sum() == 4 * 3600
        assert calls == []  # whole minutes, nothing new since the refresh: rollups only


def test_retention_forgets_old_raw_readings_and_keeps_their_rollups(db, backend):
    with open_store(db, create=True) as st:
        for d in range(5):
            st.load_readings(_frame("a", T0 + d * DAY, 1440, 60_000, d))
        before = st.downsample(3600, asset="a")
        out = st.apply_retention(2 * DAY, now=T0 + 5 * DAY)
        assert out["readings_deleted"] == 3 * 1440
        assert st.count() == 2 * 1440 and st.window(asset="a")["ts"].min() == T0 + 3 * DAY
        after = st.downsample(3600, asset="a")
        _same(after, before)  # the hourly history outlives the raw readings
        assert st.latest(1)[0].ts == T0 + 5 * DAY - 60_000


def test_twin_retention_command(db, backend, capsys):
    from twinlib.cli import main
    now = pd.Timestamp.now(tz="UTC").value // 10**6
    with open_store(db, create=True) as st:
        st.load_readings(_frame("a", (now // DAY - 200) * DAY, 100, 60_000, 0))
        st.load_readings(_frame("a", now - HOUR_MS, 10, 1000, 1))
    assert main(["retention", "--db", str(db), "--keep", "90d"]) == 0
    assert "100 raw readings deleted" in capsys.readouterr().out
    with open_store(db) as st:
        assert st.count() == 10
    assert main(["retention", "--db", str(db), "--keep", "soon"]) == 2
    assert main(["retention", "--db", str(db)]) == 2  # no policy: refused, nothing deleted
    assert "--keep 90d" in capsys.readouterr().err


def test_durations():
    assert parse_duration_ms("90d") == 90 * DAY and parse_duration_ms("12h") == 12 * HOUR_MS
    assert parse_duration_ms("30m") == 1_800_000 and parse_duration_ms(60) == 60_000
    for bad in ("", "-1d", "0d", "1 fortnight"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)


def test_the_monitor_refreshes_rollups_and_applies_retention_once_a_day(db, tmp_path):
    from twinlib.monitor import Monitor

    class Idle:  # a source with nothing to say
        name, required, exhausted = "idle", (), False

        def open(self, store): pass
        def read(self, n): return None
        def commit(self, store): pass
        def describe(self): return {"source": "idle"}
        def now_ms(self): return 0
        def wait(self, s, ev): pass
        def close(self): pass

    now = pd.Timestamp.now(tz="UTC").value // 10**6
    with open_store(db, create=True) as st:
        st.load_readings(_frame("a", (now // DAY - 30) * DAY, 10, 60_000, 0))
        st.load_readings(_frame("a", now - HOUR_MS, 10, 1000, 1))
        mon = Monitor(st, Idle(), heartbeat=False, retention={"keep_ms": 7 * DAY},
                      rollup_every_s=0)
        mon._upkeep()
        assert st.count() == 10 and st.get_meta("rollup.cursor") == str(st.max_id())
        assert len(st.downsample(3600, asset="a")) == 2  # the old hour lives on in the rollups
        st.load_readings(_frame("a", (now // DAY - 20) * DAY, 10, 60_000, 2))
        mon._upkeep()  # retention ran less than a day ago: not again
        assert st.count() == 20
