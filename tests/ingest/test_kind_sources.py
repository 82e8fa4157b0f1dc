"""Every live door takes any kind: a replayed CSV of a user's kind, MQTT JSON of a user's kind
(one kind per subscription, or each asset's kind from the settings file), and a feed mixing
assets of several kinds — each reading validated with its own kind's signals and ranges."""
from __future__ import annotations

import io
import math
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pandas as pd
import pytest

from twinlib.cli import main
from twinlib.config import get_settings
from twinlib.ingest import ingest_by_kind
from twinlib.ingest.sources import MqttSource, ReplaySource
from twinlib.ingest.sources.mqtt import parse_payload
from twinlib.kinds import BUILTIN_KINDS
from twinlib.monitor import Monitor
from twinlib.store import open_store
from twinlib.timeutil import format_ts

SETTINGS = """
[kinds.compressor]
[kinds.compressor.signals.discharge_temp]
unit = "°C"
valid = [-40, 250]
high = [110, 130]
[kinds.compressor.signals.current]
unit = "A"
valid = [0, 500]
[kinds.compressor.signals.speed]
role = "state"
unit = "rpm"
valid = [0, 6000]

[assets."comp-1"]
kind = "compressor"
"""
T0 = 1_770_681_600_000


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "twin.toml"
    path.write_text(SETTINGS, encoding="utf-8")
    return get_settings(env={}, settings_file=path, db_path=tmp_path / "twin.db")


def _compressor_csv(path, n=50, sep=",", header=("timestamp", "Discharge Temp", "CURRENT",
                                                  "speed")):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({header[0]: [format_ts(T0 + i * 1000) for i in range(n)],
                          header[1]: 80 + rng.normal(0, 1, n), header[2]: 40 + rng.normal(0, 1, n),
                          header[3]: 2900 + rng.normal(0, 5, n)})
    frame.to_csv(path, index=False, sep=sep)
    return frame


def _run(monitor_source, store):
    mon = Monitor(store, monitor_source, engine=None, tick_s=0.05, batch_rows=20)
    mon.run(duration_s=120)  # a replay ends the loop at its last row
    return mon


def test_replay_of_a_user_kind_csv_keeps_every_signal(settings, tmp_path):
    kind = settings.kind("compressor")
    frame = _compressor_csv(tmp_path / "comp.csv", sep=";")
    source = ReplaySource(tmp_path / "comp.csv", speed=math.inf, kind=kind, asset="comp-7")
    assert source.fmt == "csv" and source.kind is kind
    store = open_store(settings.db_path, create=True)
    try:
        mon = _run(source, store)
        assert mon.stats.rejected == 0
        stored = store.window(asset="comp-7")
        assert store.asset("comp-7")["kind"] == "compressor"
    finally:
        store.close()
    assert len(stored) == len(frame)
    np.testing.assert_allclose(stored["discharge_temp"].to_numpy(),
                               frame["Discharge Temp"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(stored["current"].to_numpy(), frame["CURRENT"].to_numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(stored["speed"].to_numpy(), frame["speed"].to_numpy(), rtol=1e-6)


def test_replay_refuses_a_column_the_kind_does_not_have(settings, tmp_path):
    _compressor_csv(tmp_path / "c.csv", header=("timestamp", "discharge_temp", "current", "oil"))
    with pytest.raises(ValueError, match="oil.*not signals of kind 'compressor'"):
        ReplaySource(tmp_path / "c.csv", speed=math.inf, kind=settings.kind("compressor"))


def test_replay_refuses_a_missing_measured_signal(settings, tmp_path):
    pd.DataFrame({"timestamp": [format_ts(T0)], "discharge_temp": [80.0]}).to_csv(
        tmp_path / "c.csv", index=False)
    with pytest.raises(ValueError, match="missing column.*current"):
        ReplaySource(tmp_path / "c.csv", speed=math.inf, kind=settings.kind("compressor"))


def test_twin_run_replays_a_user_kind(settings, tmp_path, monkeypatch):
    frame = _compressor_csv(tmp_path / "comp.csv")
    monkeypatch.setenv("TWIN_SETTINGS", str(settings.settings_file))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["run", "--db", str(settings.db_path), "--source", "replay",
                     str(tmp_path / "comp.csv"), "--kind", "compressor", "--asset", "comp-1",
                     "--speed", "max", "--no-notify", "--tick", "0.05"])
    assert code == 0, err.getvalue()
    store = open_store(settings.db_path, readonly=True)
    try:
        stored = store.window(asset="comp-1")
    finally:
        store.close()
    assert len(stored) == len(frame)
    assert stored[["discharge_temp", "current", "speed"]].notna().all().all()


def test_twin_run_refuses_an_unknown_kind_and_a_foreign_required_signal(settings, tmp_path,
                                                                        monkeypatch, capsys):
    _compressor_csv(tmp_path / "comp.csv")
    monkeypatch.setenv("TWIN_SETTINGS", str(settings.settings_file))
    base = ["run", "--db", str(settings.db_path), "--source", "replay", str(tmp_path / "comp.csv"),
            "--speed", "max", "--no-notify"]
    assert main([*base, "--kind", "gearbox"]) == 2
    assert "unknown kind 'gearbox'" in capsys.readouterr().err
    assert main([*base, "--kind", "compressor", "--required", "temperature"]) == 2
    assert "temperature not a signal of kind 'compressor'" in capsys.readouterr().err
    assert not settings.db_path.exists()   # refused before any database was made


def test_mqtt_payload_of_a_user_kind(settings):
    kind = settings.kind("compressor")
    payload = b'{"timestamp": "2026-02-10 14:30:00", "discharge_temp": 91.5, "current": 40.2, ' \
              b'"speed": 2950}'
    rows, rejects = parse_payload(payload, "twin/comp-1/readings", "twin/+/readings", None,
                                  kind=kind)
    assert not rejects
    assert rows[0]["discharge_temp"] == 91.5 and rows[0]["current"] == 40.2
    assert rows[0]["speed"] == 2950
    # with the pump's fields the compressor's values are not readings at all
    rows, _ = parse_payload(payload, "twin/comp-1/readings", "twin/+/readings", None)
    assert "discharge_temp" not in rows[0]
    # each asset's kind from the settings file
    rows, rejects = parse_payload(payload, "twin/comp-1/readings", "twin/+/readings", None,
                                  kind=settings.kind_for)
    assert not rejects and rows[0]["discharge_temp"] == 91.5


def test_mqtt_source_with_a_kind_requires_its_signals(settings):
    kind = settings.kind("compressor")
    src = MqttSource("127.0.0.1:1", topic="twin/+/readings", kind=kind, client_id=None)
    assert src.kind is kind and src.required == kind.measured
    frame = src._frame([{"asset_id": "comp-1", "timestamp": "2026-02-10 14:30:00",
                         "discharge_temp": 90.0, "current": 41.0}])
    assert {"discharge_temp", "current"} <= set(frame.columns)  # state only when sent
    assert "temperature" not in frame.columns
    per_asset = MqttSource("127.0.0.1:1", topic="twin/+/readings", kind_of=settings.kind_for,
                           client_id=None)
    assert per_asset.kind is None and per_asset.kind_of is not None


def test_a_feed_of_several_kinds_is_validated_per_kind(settings):
    pump_row = {"asset_id": "pump-01", "timestamp": format_ts(T0), "temperature": 70.0,
                "vibration": 0.3, "pressure": 40.0}
    frame = pd.DataFrame([
        pump_row,
        {"asset_id": "comp-1", "timestamp": format_ts(T0), "discharge_temp": 95.0,
         "current": 42.0, "speed": 3000.0},
        {"asset_id": "comp-1", "timestamp": format_ts(T0 + 1000), "discharge_temp": 999.0,
         "current": 42.0},                                  # outside the valid range
        {"asset_id": "comp-1", "timestamp": format_ts(T0 + 2000), "discharge_temp": 96.0},
        {**pump_row, "timestamp": format_ts(T0 + 1000), "pressure": None},
    ])
    store = open_store(settings.db_path, create=True)
    try:
        report = ingest_by_kind(store, frame, settings.kind_for, source="mqtt", line_offset=1)
        comp = store.window(asset="comp-1")
        pump = store.window(asset="pump-01")
        kinds = {a: store.asset(a)["kind"] for a in ("comp-1", "pump-01")}
    finally:
        store.close()
    assert report.received == 5 and report.inserted == 2
    assert [(r.line, r.code) for r in report.rejects] == [
        (3, "out_of_range"), (4, "missing_value"), (5, "missing_value")]
    assert "current" in report.rejects[1].reason and "pressure" in report.rejects[2].reason
    assert kinds == {"comp-1": "compressor", "pump-01": "pump"}
    assert comp["discharge_temp"].tolist() == [95.0] and comp["speed"].tolist() == [3000.0]
    assert pump["temperature"].tolist() == [70.0]
    assert BUILTIN_KINDS["pump"].name == "pump"
