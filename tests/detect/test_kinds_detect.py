"""Detection follows the asset's kind: rules from the kind's limits, a learned twin for kinds
without physics (`twin fit` or the first hours), and the fault model as one more rule."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinlib.cli import main
from twinlib.config import get_settings
from twinlib.detect import AlarmEngine
from twinlib.detect.rules import RuleBook, ruleset_for_kind, ruleset_from_settings
from twinlib.ingest import ingest_frame
from twinlib.kinds import builtin_kind
from twinlib.store import open_store

SKAB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "skab-dev"
if not SKAB.is_dir():
    SKAB = Path("/work/shared/datasets/skab-dev")

KINDS_TOML = """
[kinds.chiller]
description = "Water chiller (test)"
stale_s = 30

[kinds.chiller.signals.supply_temp]
unit = "°C"
valid = [-20, 60]
high = [12, 15]
low = [2, 1]
deadband = 0.5
hold_s = 4

[kinds.chiller.signals.flow]
unit = "m³/h"
valid = [0, 500]
impossible = [0, 300]

[kinds.chiller.signals.power]
unit = "kW"
valid = [0, 1000]
high = { critical = 400 }

[kinds.chiller.signals.load]
role = "state"
unit = "%"
valid = [0, 100]

[assets."ch-1"]
kind = "chiller"
[assets."ch-2"]
kind = "chiller"
[assets."ch-2".thresholds]
supply_temp = 10
"""
T0 = 1_770_681_600_000


def _settings(tmp_path, text=KINDS_TOML, db="kinds.db", **more):
    path = tmp_path / f"{db}.toml"
    path.write_text(text, encoding="utf-8")
    return get_settings(env={}, settings_file=path, db_path=tmp_path / db, **more)


# -- rules from the kind ----------------------------------------------------------------------
def test_pump_rules_are_the_first_release_defaults():
    rs = ruleset_from_settings({})
    got = {r.name: (r.warning, r.critical, r.deadband, r.hold_readings, r.hold_s, r.clear_readings)
           for r in rs.thresholds}
    assert got == {"temperature_high": (85.0, 95.0, 2.0, 3, 0.0, 30),
                   "vibration_high": (0.8, 1.2, 0.1, 3, 0.0, 30),
                   "pressure_high": (95.0, 105.0, 3.0, 3, 0.0, 30),
                   "pressure_low": (1.0, 0.5, 0.5, 3, 0.0, 30)}
    assert {(r.sensor, r.low, r.high) for r in rs.impossibles} == {
        ("temperature", -40.0, 200.0), ("vibration", 0.0, 20.0), ("pressure", -1.0, 300.0)}
    assert [r.sensor for r in rs.flatlines] == ["temperature", "vibration", "pressure"]
    assert rs.stale.after_s is None and rs.twin.train_hours == 0
    # the operating state (load, speed, ambient) is never alarmed
    assert not {"load", "speed", "ambient"} & {r.sensor for r in (*rs.thresholds, *rs.flatlines)}


def test_skab_testbed_gets_flatline_but_no_threshold_rules():
    rs = ruleset_for_kind(builtin_kind("skab-testbed"))
    assert rs.thresholds == () and rs.impossibles == ()
    assert [r.sensor for r in rs.flatlines] == list(builtin_kind("skab-testbed").measured)
    assert rs.kind == "skab-testbed"


def test_user_kind_rules_come_from_its_limits_and_overrides_still_apply(tmp_path):
    settings = _settings(tmp_path)
    book = RuleBook(settings=settings)
    rs = book.for_asset("ch-1")
    th = {r.name: r for r in rs.thresholds}
    assert set(th) == {"supply_temp_high", "supply_temp_low", "power_high"}   # flow: no limits
    hi, lo, pw = th["supply_temp_high"], th["supply_temp_low"], th["power_high"]
    assert (hi.warning, hi.critical, hi.deadband, hi.hold_s, hi.unit) == (12.0, 15.0, 0.5, 4.0, "°C")
    assert (lo.warning, lo.critical, lo.direction) == (2.0, 1.0, "low")
    assert (pw.warning, pw.critical) == (400.0, 400.0)          # a critical-only limit
    assert [(r.sensor, r.low, r.high) for r in rs.impossibles] == [("flow", 0.0, 300.0)]
    assert [r.sensor for r in rs.flatlines] == ["supply_temp", "flow", "power"]
    assert rs.stale.after_s == 30.0                               # the kind's stale_s
    # [assets."ch-2".thresholds] moves the warning and the critical with it
    ch2 = {r.name: r for r in book.for_asset("ch-2").thresholds}["supply_temp_high"]
    assert (ch2.warning, ch2.critical) == (10.0, 13.0)
    # a stored kind is used when the settings name none
    assert book.for_asset("tb-9", "skab-testbed").kind == "skab-testbed"
    assert book.for_asset("p-9").kind == "pump"
    with pytest.raises(ValueError, match="unknown"):
        RuleBook({**settings.file, "rules": {"impossible_nosuch": [0, 1]}})
    RuleBook({**settings.file, "rules": {"impossible_flow": [0, 200]}})   # any kind's signal


def _chiller_frame(asset, n, rng, *, start=T0, hot_from=None):
    load = 50 + 30 * np.sin(np.arange(n) / 300.0)
    temp = 6 + 0.04 * load + rng.normal(0, 0.05, n)
    if hot_from is not None:
        temp[hot_from:hot_from + 40] = 13.5
    return pd.DataFrame({"ts": start + np.arange(n) * 1000, "asset_id": asset,
                         "supply_temp": temp, "flow": 100 + load + rng.normal(0, 0.5, n),
                         "power": 50 + 2 * load + rng.normal(0, 1.0, n), "load": load})


def test_engine_raises_limit_alarms_from_each_assets_kind(tmp_path):
    settings = _settings(tmp_path)
    store = open_store(settings.db_path, create=True)
    rng = np.random.default_rng(3)
    chiller = settings.kind("chiller")
    ingest_frame(store, _chiller_frame("ch-1", 200, rng, hot_from=100), source="t", kind=chiller)
    ingest_frame(store, _chiller_frame("ch-2", 200, rng), source="t", kind=chiller)
    pump = builtin_kind("pump")
    ingest_frame(store, pd.DataFrame({"ts": T0 + np.arange(60) * 1000, "asset_id": "pump-01",
                                      "temperature": [70.0] * 20 + [90.0] * 40,
                                      "vibration": 0.3 + rng.normal(0, 0.01, 60),
                                      "pressure": 40 + rng.normal(0, 0.3, 60)}),
                 source="t", kind=pump)
    events = AlarmEngine(store, settings=settings).process_new()
    raised = {(e.asset_id, e.rule): e for e in events if e.kind == "raised"}
    assert ("ch-1", "supply_temp_high") in raised
    e = raised[("ch-1", "supply_temp_high")]
    assert "°C" in e.message and e.severity == "warning" and e.sensor == "supply_temp"
    assert e.ts == T0 + 100_000                       # starts where the condition began (hold 4 s)
    assert ("pump-01", "temperature_high") in raised
    assert "°C" in raised[("pump-01", "temperature_high")].message
    # ch-2 runs 6.9–9.3 °C: quiet at the kind's 12 °C, alarmed at its own 10 °C? no: below both
    assert not [k for k in raised if k[0] == "ch-2"]
    assert not [k for k in raised if k[1].startswith(("load", "speed", "ambient"))]
    store.close()


def test_flatline_learns_a_quantised_signals_plateaus():
    from twinlib.detect.rules import FlatlineRule
    rule = FlatlineRule("flow", readings=10, factor=3.0)
    st = rule.new_state()
    ts = T0
    out = []
    for level in range(8):                 # a meter that holds each value for 8 readings
        for _ in range(8):
            out += rule.step(st, {"ts": ts, "flow": 30.0 + level % 2})
            ts += 1000
    assert out == [] and st.longest == 8
    for _ in range(30):                    # stuck for longer than 3 × its plateaus
        out += rule.step(st, {"ts": ts, "flow": 42.0})
        ts += 1000
    assert [t.kind for t in out if t.kind != "updated"] == ["raised"]
    assert out[0].ts == ts - 30_000 and "for 24 readings" in out[0].message


# -- the learned twin ---------------------------------------------------------------------------
def _skab_frame(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    df = pd.read_csv(SKAB / "valve1" / f"{name}.csv", sep=";")
    df = df.rename(columns={"Volume Flow RateRMS": "Volume_Flow_RateRMS"})
    df["ts"] = pd.to_datetime(df.pop("datetime")).astype("datetime64[ms]").astype("int64")
    anomaly = df.pop("anomaly").to_numpy() > 0
    df.pop("changepoint")
    df["asset_id"] = "skab-13"
    return df, anomaly


@pytest.mark.skipif(not (SKAB / "valve1" / "13.csv").exists(), reason="SKAB data not present")
def test_twin_fit_on_a_skab_file_then_detect_raises_inside_the_anomaly_only(tmp_path, capsys):
    settings_file = tmp_path / "twin.toml"
    settings_file.write_text("")
    db = tmp_path / "skab.db"
    df, anomaly = _skab_frame("13")
    store = open_store(db, create=True)
    ingest_frame(store, df, source="skab", kind=builtin_kind("skab-testbed"))
    store.close()
    ts = df["ts"].to_numpy()
    train_to = pd.Timestamp(int(ts[399]), unit="ms").strftime("%Y-%m-%d %H:%M:%S")
    env = {"TWIN_SETTINGS": str(settings_file)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert main(["fit", "--db", str(db), "--asset", "skab-13", "--to", train_to, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["twin"] == "learned" and summary["kind"] == "skab-testbed"
        assert summary["readings"] == 400
        assert set(summary["residual_sigma"]) == set(builtin_kind("skab-testbed").measured)
        assert main(["detect", "--db", str(db), "--json"]) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    twin = [e for e in events if e["rule"] == "twin_residual" and e["kind"] == "raised"]
    start, end = ts[anomaly].min(), ts[anomaly].max()
    assert twin, "the learned twin raised nothing on valve1/13"
    assert all(start <= e["ts"] <= end for e in twin)          # nothing outside the anomaly
    assert twin[0]["ts"] - start < 60_000                      # within a minute of its start
    assert "Volume_Flow_RateRMS" in twin[0]["message"]


@pytest.mark.skipif(not (SKAB / "valve1" / "13.csv").exists(), reason="SKAB data not present")
def test_twin_fit_errors_are_clear(tmp_path, capsys, monkeypatch):
    db = tmp_path / "skab.db"
    df, _ = _skab_frame("13")
    store = open_store(db, create=True)
    ingest_frame(store, df.iloc[:50], source="skab", kind=builtin_kind("skab-testbed"))
    store.close()
    monkeypatch.setenv("TWIN_SETTINGS", str(tmp_path / "none.toml"))
    assert main(["fit", "--db", str(db), "--asset", "nope"]) == 2
    assert "no asset 'nope'" in capsys.readouterr().err
    assert main(["fit", "--db", str(db), "--asset", "skab-13", "--from", "2030-01-01",
                 "--to", "2029-01-01"]) == 2
    assert "--to must be after --from" in capsys.readouterr().err
    assert main(["fit", "--db", str(db), "--asset", "skab-13", "--from", "2030-01-01"]) == 2
    assert "no readings" in capsys.readouterr().err


def _leaky_fleet(n_hours: float, rng) -> pd.DataFrame:
    """Two chillers at 1 reading / 10 s; ch-1's flow drops by 8 % from hour 3 (a fouled strainer:
    still far inside any limit)."""
    n = int(n_hours * 360)
    frames = []
    for asset in ("ch-1", "ch-2"):
        t = np.arange(n)
        load = 50 + 25 * np.sin(t / 60.0) + rng.normal(0, 1.0, n)
        flow = 100 + 1.5 * load + rng.normal(0, 0.8, n)
        power = 40 + 2.0 * load + rng.normal(0, 1.0, n)
        temp = 6 + 0.03 * load + rng.normal(0, 0.05, n)
        if asset == "ch-1":
            flow[3 * 360:] *= 0.92
        frames.append(pd.DataFrame({"ts": T0 + t * 10_000, "asset_id": asset, "load": load,
                                    "flow": flow, "power": power, "supply_temp": temp}))
    return pd.concat(frames, ignore_index=True).sort_values(["ts", "asset_id"])


def test_learned_twin_fitted_on_the_first_hours_catches_a_drift_inside_the_limits(tmp_path):
    text = KINDS_TOML + "\n[rules]\ntwin_train_hours = 2\n"
    settings = _settings(tmp_path, text)
    store = open_store(settings.db_path, create=True)
    ingest_frame(store, _leaky_fleet(4.0, np.random.default_rng(5)), source="t",
                 kind=settings.kind("chiller"))
    engine = AlarmEngine(store, settings=settings, chunk=700)
    events = engine.process_new()
    twin = [e for e in events if e.rule == "twin_residual" and e.kind == "raised"]
    assert [e.asset_id for e in twin] == ["ch-1"]                # the healthy chiller is quiet
    assert twin[0].sensor == "flow" and "flow below expected" in twin[0].message
    assert T0 + 3 * 3_600_000 <= twin[0].ts < T0 + 3 * 3_600_000 + 600_000
    assert not [e for e in events if e.kind == "raised" and e.rule != "twin_residual"]
    raw = json.loads(store.get_meta("detect.twin.ch-1"))
    assert raw["format"] == "twinlib.learned-twin/1" and raw["origin"] == "auto"
    assert raw["train"]["to"] == T0 + 2 * 3_600_000
    # the same history in small live steps, with restarts, gives the same alarms
    store2 = open_store(tmp_path / "again.db", create=True)
    ingest_frame(store2, _leaky_fleet(4.0, np.random.default_rng(5)), source="t",
                 kind=settings.kind("chiller"))
    live = []
    while True:
        step = AlarmEngine(store2, settings=settings, chunk=300).process_new(max_readings=900)
        if not step and not AlarmEngine(store2, settings=settings).behind():
            break
        live += step
    key = [(e.kind, e.asset_id, e.rule, e.ts, e.message) for e in events]
    assert [(e.kind, e.asset_id, e.rule, e.ts, e.message) for e in live] == key
    store.close()
    store2.close()


# -- the fault model as one more rule ------------------------------------------------------------
class _LeakScorer:
    """Stands in for a trained model: 'leak' with p 0.9 from a given time on one asset."""

    def __init__(self, asset, since):
        self.asset, self.since = asset, since

    def prepare(self, store, rows):
        out = {}
        for r in rows:
            p = 0.9 if (r.asset_id == self.asset and r.ts >= self.since) else 0.05
            out[r.id] = {"proba": {"healthy": 1 - p, "leak": p},
                         "evidence": {"pressure_residual_z": -7.0}}
        return out


def _card(folder: Path, stem: str, sensors, state):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.card.json").write_text(json.dumps(
        {"name": stem, "feature_spec": {"sensors": sensors, "state": state}}))


def test_fault_model_card_is_found_for_the_kind_it_was_trained_on(tmp_path):
    from twinlib.detect.fault_model import fault_model_setting, find_fault_model

    models = tmp_path / "models"
    pump = builtin_kind("pump")
    assert find_fault_model(models, pump) is None
    _card(models, "fault_detection_xgb", ["temperature", "vibration", "pressure"], ["load"])
    _card(models, "other_kind", ["Current", "Voltage"], [])
    assert find_fault_model(models, pump).name == "fault_detection_xgb.pkl"
    _card(models, "fault_detection_rf", ["temperature", "vibration", "pressure"],
          ["load", "speed", "ambient"])
    assert find_fault_model(models, pump).name == "fault_detection_rf.pkl"     # preferred
    assert find_fault_model(models, pump, "fault_detection_xgb").name == "fault_detection_xgb.pkl"
    assert find_fault_model(models, builtin_kind("skab-testbed")) is None
    assert fault_model_setting({}) is False
    assert fault_model_setting({"rules": {"fault_model": "fault_detection_rf.pkl"}}) == "fault_detection_rf"
    with pytest.raises(ValueError, match="fault_model"):
        fault_model_setting({"rules": {"fault_model": 3}})


def test_monitor_engine_runs_the_fault_model_rule_when_enabled(tmp_path, monkeypatch):
    from twinlib.models import scoring
    from twinlib.monitor import build_engine

    models = tmp_path / "models"
    _card(models, "fault_detection_rf", ["temperature", "vibration", "pressure"],
          ["load", "speed", "ambient"])
    leak_at = T0 + 600_000
    loaded = []

    def fake_load(path, **kw):
        loaded.append(Path(path).name)
        return _LeakScorer("pump-02", leak_at)

    monkeypatch.setattr(scoring.ModelScorer, "load", staticmethod(fake_load))
    text = KINDS_TOML + "\n[rules]\nfault_model = true\n[fault_model]\nhold_s = 60\nclear_s = 60\n"
    settings = _settings(tmp_path, text, models_dir=models)
    store = open_store(settings.db_path, create=True)
    rng = np.random.default_rng(1)
    n = 1200
    for asset in ("pump-01", "pump-02"):
        ingest_frame(store, pd.DataFrame({
            "ts": T0 + np.arange(n) * 1000, "asset_id": asset,
            "temperature": 60 + rng.normal(0, 0.3, n), "vibration": 0.3 + rng.normal(0, 0.01, n),
            "pressure": 40 + rng.normal(0, 0.3, n)}), source="t", kind=builtin_kind("pump"))
    ingest_frame(store, _chiller_frame("ch-1", 300, rng), source="t", kind=settings.kind("chiller"))
    engine = build_engine(store, settings)
    events = engine.process_new()
    model = [e for e in events if e.rule == "fault_model"]
    assert [(e.kind, e.asset_id) for e in model] == [("raised", "pump-02")]
    assert model[0].ts == leak_at and "leak" in model[0].message
    assert loaded == ["fault_detection_rf.pkl"]                 # once for the pump kind
    assert "fault_model" not in engine.ruleset("ch-1").names()  # no model for the chiller
    row = [a for a in store.active_alerts() if a["rule"] == "fault_model"]
    assert len(row) == 1 and row[0]["asset_id"] == "pump-02"
    # off by default
    plain = build_engine(store, _settings(tmp_path, KINDS_TOML, db="other.db"))
    assert "fault_model" not in plain.ruleset("pump-01").names()
    store.close()


def test_learned_limits_replace_the_kinds_and_catch_a_drop_from_the_assets_own_normal(tmp_path):
    """A machine that normally runs at 100 °C (above the kind's 85 °C limit): with
    learn_limits_hours its own first day sets the band, and only the failure's drop alarms."""
    text = '[assets."m-1"]\nkind = "machine-temperature"\n[rules]\nlearn_limits_hours = 24\n'
    settings = _settings(tmp_path, text)
    rng = np.random.default_rng(2)
    n = 3 * 288                                       # three days at 5 minutes
    temp = 100 + 3 * np.sin(np.arange(n) / 40.0) + rng.normal(0, 0.8, n)
    temp[600:640] = np.linspace(95, 60, 40)           # the failure: a fall of 40 °C
    store = open_store(settings.db_path, create=True)
    ingest_frame(store, pd.DataFrame({"ts": T0 + np.arange(n) * 300_000, "asset_id": "m-1",
                                      "temperature": temp}),
                 source="t", kind=builtin_kind("machine-temperature"))
    rs = RuleBook(settings=settings).for_asset("m-1")
    assert rs.thresholds == () and [r.name for r in rs.learned] == ["temperature_high",
                                                                     "temperature_low"]
    events = AlarmEngine(store, settings=settings).process_new()
    raised = [e for e in events if e.kind == "raised"]
    assert [(e.rule, e.severity) for e in raised] == [("temperature_low", "warning")]
    assert T0 + 600 * 300_000 <= raised[0].ts <= T0 + 620 * 300_000
    assert "[learned]" in raised[0].message
    band = json.loads(store.get_meta("detect.limits.m-1"))["bands"]["temperature"]
    assert 98 < band[0] < 102 and 1 < band[1] < 4
    # without learning, the kind's 85 °C limit alarms all day long
    plain = _settings(tmp_path, '[assets."m-1"]\nkind = "machine-temperature"\n', db="plain.db")
    store2 = open_store(plain.db_path, create=True)
    ingest_frame(store2, pd.DataFrame({"ts": T0 + np.arange(n) * 300_000, "asset_id": "m-1",
                                       "temperature": temp}),
                 source="t", kind=builtin_kind("machine-temperature"))
    assert [e.rule for e in AlarmEngine(store2, settings=plain).process_new()
            if e.kind == "raised"][0] == "temperature_high"
    store.close()
    store2.close()


def test_twin_fit_on_a_pump_uses_the_physics_twin_and_detect_finds_the_leak(store, tmp_db,
                                                                          capsys, monkeypatch,
                                                                          tmp_path):
    from twinlib.timeutil import to_ms

    store.close()
    monkeypatch.setenv("TWIN_SETTINGS", str(tmp_path / "none.toml"))
    assert main(["fit", "--db", str(tmp_db), "--asset", "pump-02", "--from",
                 "2026-02-10 00:00:00", "--to", "2026-02-10 01:00:00", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["twin"] == "physics" and summary["kind"] == "pump"
    assert main(["detect", "--db", str(tmp_db), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    twin = [e for e in events if e["rule"] == "twin_residual" and e["kind"] == "raised"]
    leak = to_ms("2026-02-10 01:30:00")
    assert [e["asset_id"] for e in twin] == ["pump-02"]         # only the asset with a twin
    assert leak < twin[0]["ts"] < leak + 3_600_000 and twin[0]["sensor"] == "pressure"
    assert main(["fit", "--db", str(tmp_db), "--asset", "pump-02", "--clear"]) == 0
    s = open_store(tmp_db)
    try:
        assert s.get_meta("detect.twin.pump-02") == ""
    finally:
        s.close()
