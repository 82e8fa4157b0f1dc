"""Asset kinds: the built-in catalogue, kinds from the settings file, and their errors."""
from __future__ import annotations

import tomllib

import pandas as pd
import pytest

from twinlib.config import PHYSICAL_LIMITS, SENSORS, THRESHOLDS, SettingsError, get_settings
from twinlib.kinds import BUILTIN_KINDS, KindError, kind_to_toml, load_kinds

COMPRESSOR = """
[kinds.compressor]
description = "Screw compressor"

[kinds.compressor.signals.discharge_temperature]
unit = "°C"
valid = [-40, 250]
high = [95, 110]
deadband = 2.0
hold_s = 10

[kinds.compressor.signals.discharge_pressure]
unit = "bar"
valid = [0, 20]
high = { warning = 10.5, critical = 11.5 }
low = [6.0, 5.0]

[kinds.compressor.signals.load]
role = "state"
unit = "%"
valid = [0, 100]

[assets."comp-1"]
kind = "compressor"
location = "plant-1/air"
"""


def test_the_pump_is_the_seed_and_the_old_constants_come_from_it():
    pump = BUILTIN_KINDS["pump"]
    assert pump.measured == SENSORS == ("temperature", "vibration", "pressure")
    assert pump.state == ("load", "speed", "ambient")
    assert pump.thresholds() == THRESHOLDS == {"temperature": 85.0, "vibration": 0.8, "pressure": 95.0}
    assert pump.valid == PHYSICAL_LIMITS
    assert BUILTIN_KINDS["skab-testbed"].measured == (
        "Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
        "Thermocouple", "Voltage", "Volume_Flow_RateRMS")
    assert BUILTIN_KINDS["machine-temperature"].names == ("temperature",)


def test_a_kind_from_the_settings_file_with_its_asset(tmp_path):
    f = tmp_path / "twin.toml"
    f.write_text(COMPRESSOR, encoding="utf-8")
    s = get_settings(env={}, settings_file=f)
    k = s.kind_for("comp-1")
    assert k.name == "compressor" and k.names == ("discharge_temperature", "discharge_pressure", "load")
    t = k.signal("discharge_temperature")
    assert (t.warning_high, t.critical_high, t.deadband, t.hold_s) == (95.0, 110.0, 2.0, 10.0)
    p = k.signal("discharge_pressure")
    assert (p.warning_high, p.critical_high, p.warning_low, p.critical_low) == (10.5, 11.5, 6.0, 5.0)
    assert k.measured == ("discharge_temperature", "discharge_pressure") and k.state == ("load",)
    assert s.location_for("comp-1") == "plant-1/air"
    assert s.kind_for("pump-01").name == "pump"
    assert s.kind_for("x", stored_kind="skab-testbed").name == "skab-testbed"


def test_a_kind_written_as_toml_reads_back_the_same():
    for kind in BUILTIN_KINDS.values():
        again = load_kinds(tomllib.loads(kind_to_toml(kind)))[kind.name]
        assert again.signals == kind.signals and again.physics == kind.physics


@pytest.mark.parametrize("text, words", [
    ("[kinds.k.signals.a]\nrole = 'sensor'", "role"),
    ("[kinds.k.signals.a]\nhigh = [10, 5]", "critical 5.0 is below warning 10.0"),
    ("[kinds.k.signals.a]\nvalid = [5, 1]", "low 5.0 must be below high 1.0"),
    ("[kinds.k.signals.a]\nunits = 'A'", "unknown keys ['units']"),
    ("[kinds.k.signals.timestamp]\nunit = 's'", "signal name"),
    ("[kinds.k.signals.a]\nrole = 'state'", "no measured signal"),
    ("[kinds.k]\nextends = 'nope'", "unknown kind 'nope'"),
    ("[kinds.k.signals.a]\nrole = 'state'\nhigh = 3\n[kinds.k.signals.b]\nunit = ''", "state signal"),
])
def test_a_bad_kind_is_refused_with_a_message_naming_it(tmp_path, text, words):
    f = tmp_path / "twin.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        get_settings(env={}, settings_file=f)
    assert "kinds.k" in str(err.value) and words in str(err.value)


def test_an_unknown_kind_for_an_asset_says_how_to_define_it(tmp_path):
    s = get_settings(env={}, settings_file=tmp_path / "none.toml")
    with pytest.raises(SettingsError, match=r"\[kinds.fan\]"):
        s.kind_for("a", stored_kind="fan")
    with pytest.raises(KindError):
        BUILTIN_KINDS["pump"].signal("flow")


def _infer(tmp_path, capsys, path, *extra):
    from twinlib.cli import main
    assert main(["kinds", "infer", "--csv", str(path), *extra]) == 0
    text = capsys.readouterr().out
    f = tmp_path / "inferred.toml"
    f.write_text(text, encoding="utf-8")
    return text, get_settings(env={}, settings_file=f).kinds


def test_infer_makes_a_usable_kind_from_a_plain_csv(tmp_path, capsys):
    csv = tmp_path / "fan.csv"
    csv.write_text("timestamp,Motor Current,bearing_temp_de,speed_rpm,note\n"
                   "2026-01-01 00:00:00,12.5,41.0,1480,ok\n2026-01-01 00:00:01,13.1,41.2,1490,ok\n",
                   encoding="utf-8")
    text, kinds = _infer(tmp_path, capsys, csv)
    k = kinds["fan"]
    assert k.names == ("Motor_Current", "bearing_temp_de", "speed_rpm")
    assert k.signal("Motor_Current").unit == "A" and k.signal("bearing_temp_de").unit == "°C"
    assert k.state == ("speed_rpm",)
    lo, hi = k.signal("Motor_Current").valid
    assert lo == 0.0 and hi >= 13.1 * 10  # the physical bound leaves room for faults
    # a temperature may go below anything the file shows (a winter start): not below 0 K
    assert k.signal("bearing_temp_de").valid[0] == -273.15
    assert "note" in text and "left out" in text


@pytest.mark.parametrize("rel, name, n", [("skab-dev/valve1/3.csv", "valve1-3", 8),
                                          ("nab/machine_temperature_system_failure.csv",
                                           "machine-temperature-system-failure", 1)])
def test_infer_on_the_real_recordings(tmp_path, capsys, rel, name, n):
    from pathlib import Path
    path = Path(__file__).resolve().parents[3] / "shared" / "datasets" / rel
    if not path.exists():
        pytest.skip(f"{path} not found (the shared datasets sit beside the checkout)")
    _, kinds = _infer(tmp_path, capsys, path)
    k = kinds[name]
    assert len(k.measured) == n
    raw = pd.read_csv(path, sep=";" if "skab" in rel else ",")
    for s in k.signals:  # every value of the file is inside the inferred valid range
        col = next(c for c in raw.columns if c.replace(" ", "_") == s.name)
        assert raw[col].between(*s.valid).all()


def test_every_skab_recording_fits_the_skab_kinds_valid_ranges():
    """Validation refuses a value outside `valid`: a real SKAB recording must lose no row to it
    (valve1/3.csv reads Pressure -1.257, a sensor offset below full vacuum)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "skab-dev"
    files = sorted(root.rglob("*.csv"))
    if not files:
        pytest.skip(f"{root} not found (the shared datasets sit beside the checkout)")
    kind = BUILTIN_KINDS["skab-testbed"]
    for f in files:
        raw = pd.read_csv(f, sep=";")
        for s in kind.signals:
            col = raw[s.name.replace("_", " ") if s.name not in raw else s.name]
            lo, hi = s.valid
            assert col.between(lo, hi).all(), (f.name, s.name, col.min(), col.max())
