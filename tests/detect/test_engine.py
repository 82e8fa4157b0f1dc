"""The alarm engine on a real store: lifecycle, cursor, batch = live, status."""
import json

import numpy as np
import pandas as pd
import pytest

from twinlib.detect import AlarmEngine, asset_status
from twinlib.store import open_store

T0 = pd.Timestamp("2026-02-10 00:00:00")
COLS = ["id", "asset_id", "rule", "sensor", "severity", "state", "message", "started_at",
        "last_seen", "ended_at", "peak_value", "trigger_count"]


def readings(asset, temps, start=T0, step_s=1.0, vib=0.3, pres=50.0):
    n = len(temps)
    return pd.DataFrame({"timestamp": start + pd.to_timedelta(np.arange(n) * step_s, unit="s"),
                         "asset_id": asset, "temperature": temps,
                         "vibration": vib + np.linspace(0, 1e-3, n),  # never flat
                         "pressure": pres + np.linspace(0, 1e-2, n)})


def test_flapping_data_gives_one_stored_alarm(tmp_db):
    rng = np.random.default_rng(0)
    temps = np.r_[70 + rng.normal(0, 0.3, 60), 85 + rng.normal(0, 1.0, 900), 70 + rng.normal(0, 0.3, 120)]
    with open_store(tmp_db, create=True) as st:
        st.load_readings(readings("pump-01", temps))
        events = AlarmEngine(st).process_new()
        alerts = st.list_alerts(limit=None)
    assert [e.kind for e in events] == ["raised", "cleared"]
    assert len(alerts) == 1
    a = alerts[0]
    assert a["rule"] == "temperature_high" and a["state"] == "cleared" and a["acked"] == 0
    assert a["peak_value"] == pytest.approx(temps.max())
    assert a["trigger_count"] > 300                   # repeated triggers updated one row
    assert a["started_at"] < a["last_seen"] < a["ended_at"]


def test_silent_asset_raises_stale_alarm_and_clears_on_data(tmp_db):
    with open_store(tmp_db, create=True) as st:
        st.load_readings(readings("pump-01", [60.0] * 10))
        eng = AlarmEngine(st)
        eng.process_new()
        last = st.newest_ts("pump-01")
        assert eng.check_stale(last + 60_000) == []
        ev = eng.check_stale(last + 90_000)
        assert [(e.kind, e.rule, e.asset_id) for e in ev] == [("raised", "stale", "pump-01")]
        assert eng.check_stale(last + 120_000) == []  # still one alarm
        status = asset_status(st, now_ms=last + 90_000)
        assert status["pump-01"]["status"] == "stale"
        st.load_readings(readings("pump-01", [60.0] * 5, start=T0 + pd.Timedelta(minutes=5)))
        ev = eng.process_new()
        assert [(e.kind, e.rule) for e in ev] == [("cleared", "stale")]
        assert asset_status(st)["pump-01"] == {"status": "normal", "messages": ["✅ All systems normal"]}


def _scenario(fleet):
    df = fleet.readings.copy()
    # a 5-minute gap on pump-03 (stale alarm in history) and a flat-lined sensor on pump-02
    gap = (df.asset_id == "pump-03") & (df.timestamp >= T0 + pd.Timedelta("2h")) & \
          (df.timestamp < T0 + pd.Timedelta("2h5min"))
    df = df[~gap].reset_index(drop=True)
    stuck = (df.asset_id == "pump-02") & (df.timestamp >= T0 + pd.Timedelta("20min")) & \
            (df.timestamp < T0 + pd.Timedelta("25min"))
    df.loc[stuck, "temperature"] = 55.55
    return df


SETTINGS = {"thresholds": {"vibration": 0.3, "pressure_low": 30.0},
            "rules": {"twin_train_hours": 1.0},
            "assets": {"pump-03": {"thresholds": {"temperature": 44.0}}}}


def test_batch_and_incremental_runs_give_identical_alarms(tmp_path, fleet):
    df = _scenario(fleet)
    with open_store(tmp_path / "batch.db", create=True) as st:
        st.load_readings(df)
        batch_events = AlarmEngine(st, SETTINGS).process_new()
        batch = pd.DataFrame(st.list_alerts(limit=None))[COLS]
    rules = set(batch["rule"])
    assert {"stale", "temperature_flatline", "vibration_high", "pressure_low",
            "temperature_high", "twin_residual"} <= rules
    rng = np.random.default_rng(3)
    with open_store(tmp_path / "live.db", create=True) as st:
        pos, live_events, eng = 0, [], None
        while pos < len(df):                          # uneven live batches, engine restarts
            n = int(rng.integers(1, 4000))
            st.load_readings(df.iloc[pos:pos + n])
            pos += n
            if eng is None or rng.random() < 0.2:
                eng = AlarmEngine(st, SETTINGS, chunk=int(rng.integers(50, 5000)))
            live_events += eng.process_new()
        live = pd.DataFrame(st.list_alerts(limit=None))[COLS]
    pd.testing.assert_frame_equal(batch, live)
    assert batch_events == live_events


def test_acknowledgement_and_filters(store):
    AlarmEngine(store, {"thresholds": {"vibration": 0.3}}).process_new()
    rows = store.list_alerts(limit=None)
    assert rows, "the bearing-wear pump must raise a vibration alarm"
    first = rows[-1]["id"]
    a = store.acknowledge_alert(first, "alice", at=1_000)
    assert (a["acked"], a["acked_by"], a["acked_at"]) == (1, "alice", 1_000)
    again = store.acknowledge_alert(first, "bob", at=2_000)
    assert (again["acked_by"], again["acked_at"]) == ("alice", 1_000)   # first ack is kept
    assert first not in [r["id"] for r in store.list_alerts(acked=False, limit=None)]
    assert [r["id"] for r in store.list_alerts(acked=True)] == [first]
    assert all(r["asset_id"] == "pump-01" for r in store.list_alerts(asset="pump-01"))
    with pytest.raises(KeyError):
        store.acknowledge_alert(10_000, "alice")
    with pytest.raises(ValueError):
        store.acknowledge_alert(first, "  ")
    with pytest.raises(ValueError):
        store.list_alerts(state="open")


def test_one_active_alarm_per_asset_and_rule_survives_lost_state(tmp_db):
    with open_store(tmp_db, create=True) as st:
        st.load_readings(readings("pump-01", [90.0] * 10))
        AlarmEngine(st).process_new()
        st.set_meta("detect.state", "{}")             # the machine state is lost
        st.load_readings(readings("pump-01", [91.0] * 10, start=T0 + pd.Timedelta(seconds=10)))
        events = AlarmEngine(st).process_new()        # adopts the active row from the table
        assert events == []
        active = st.list_alerts(state="active")
        assert len(active) == 1 and active[0]["peak_value"] == 91.0


def test_two_engines_on_one_store_check_each_reading_once(tmp_db):
    rng = np.random.default_rng(1)
    temps = np.r_[70 + rng.normal(0, 0.3, 100), 90 + rng.normal(0, 0.3, 50), 70 + rng.normal(0, 0.3, 100)]
    with open_store(tmp_db, create=True) as st:
        a, b = AlarmEngine(st, chunk=60), AlarmEngine(st, chunk=60)
        st.load_readings(readings("pump-01", temps))
        ev_a = a.process_new(max_readings=120)
        ev_b = b.process_new()                        # continues from a's cursor and state
        assert [e.kind for e in ev_a + ev_b] == ["raised", "cleared"]
        assert len(st.list_alerts(limit=None)) == 1


def test_asset_status_levels(tmp_db):
    with open_store(tmp_db, create=True) as st:
        st.load_readings(pd.concat([readings("pump-01", [70.0] * 20),
                                    readings("pump-02", [90.0] * 20),
                                    readings("pump-03", [99.0] * 20)]))
        st.upsert_assets([{"asset_id": "pump-04", "kind": "pump", "params": {}}])
        AlarmEngine(st).process_new()
        status = asset_status(st)
        newest = st.newest_ts()
        later = asset_status(st, now_ms=newest + 3_600_000)
    assert status["pump-01"] == {"status": "normal", "messages": ["✅ All systems normal"]}
    assert status["pump-02"]["status"] == "warning"
    assert status["pump-02"]["messages"][0].startswith("⚠️ High temperature")
    assert status["pump-03"]["status"] == "critical"
    assert status["pump-04"]["status"] == "normal"     # registered, never reported
    assert later["pump-01"]["status"] == "stale" and later["pump-03"]["status"] == "critical"
    assert later["pump-04"]["status"] == "stale"


def test_live_twin_alarm_catches_the_leak_no_threshold_sees(store):
    events = AlarmEngine(store, {"rules": {"twin_train_hours": 1.0}}).process_new()
    twin = [e for e in events if e.rule == "twin_residual" and e.kind == "raised"]
    leak_onset = int(pd.Timestamp("2026-02-10 01:30:00").value // 1_000_000)
    assert any(e.asset_id == "pump-02" and leak_onset < e.ts < leak_onset + 3_600_000 for e in twin)
    assert any("pressure below expected" in e.message for e in twin if e.asset_id == "pump-02")
    assert not [e for e in events if e.rule.startswith("pressure")]   # no threshold saw it
    assert not [e for e in twin if e.asset_id == "pump-03"]             # the healthy pump is quiet
    assert store.get_meta("detect.twin.pump-02") is not None           # the fitted twin is kept


class _NoConn:
    """A store seen only through the Store interface (no SQLite connection exposed)."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        if name == "conn":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_twin_rule_through_the_plain_store_interface(tmp_path, fleet):
    rules = {"rules": {"twin_train_hours": 1.0}}
    out = []
    for name, wrap in (("a.db", lambda s: s), ("b.db", _NoConn)):
        with open_store(tmp_path / name, create=True) as st:
            st.load_readings(fleet.readings)
            AlarmEngine(wrap(st), rules).process_new()
            out.append(pd.DataFrame(st.list_alerts(limit=None))[COLS])
    pd.testing.assert_frame_equal(out[0], out[1])
    assert "twin_residual" in set(out[0]["rule"])


# -- the twin's stored state is data, never a pickle (issue 12, item 15) ---------------------
class _Bomb:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_twin_state_is_json_and_rebuilds_the_same_model(store):
    from twinlib.detect.engine import twin_from_json

    engine = AlarmEngine(store, {"rules": {"twin_train_hours": 1.0}})
    engine.process_new()
    raw = store.get_meta("detect.twin.pump-02")
    data = json.loads(raw)                       # plain JSON, not base64 bytes
    assert data["format"] == "twinlib.twin/1"
    fitted = engine.twins["pump-02"]
    again = twin_from_json(raw)
    rows = store.window(asset="pump-02").iloc[:500]
    pd.testing.assert_frame_equal(again.residuals(rows), fitted.residuals(rows))


def test_a_pickled_twin_in_the_meta_table_is_never_unpickled(tmp_path, fleet, caplog):
    import base64
    import pickle

    rules = {"rules": {"twin_train_hours": 1.0}}
    df = fleet.readings
    half = df[df["timestamp"] < df["timestamp"].min() + pd.Timedelta("2h")]
    marker = tmp_path / "pwned"
    with open_store(tmp_path / "ref.db", create=True) as st:  # never touched
        st.load_readings(df)
        AlarmEngine(st, rules).process_new()
        reference = pd.DataFrame(st.list_alerts(limit=None))[COLS]
    with open_store(tmp_path / "t.db", create=True) as st:
        st.load_readings(half)
        AlarmEngine(st, rules).process_new()
        fitted = [k for k in ("pump-01", "pump-02", "pump-03")
                  if st.get_meta(f"detect.twin.{k}")]
        assert fitted
        for asset in fitted:  # what an attacker (or an older twinlib) left in the database
            st.set_meta(f"detect.twin.{asset}",
                        base64.b64encode(pickle.dumps(_Bomb(marker))).decode())
        st.load_readings(df)
        with caplog.at_level("WARNING", logger="twinlib.detect"):
            AlarmEngine(st, rules).process_new()
        assert not marker.exists()
        assert any("refitting" in r.message for r in caplog.records)
        assert all(json.loads(st.get_meta(f"detect.twin.{a}"))["format"] == "twinlib.twin/1"
                   for a in fitted)
        got = pd.DataFrame(st.list_alerts(limit=None))[COLS]
    pd.testing.assert_frame_equal(got, reference)   # the refit is the same twin
