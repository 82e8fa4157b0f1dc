"""Settings: argument, then environment variable, then default; the settings file on top."""
import pytest

from twinlib.config import THRESHOLDS, SettingsError, get_settings
from twinlib.timeutil import format_ts, parse_duration, to_ms


def test_argument_beats_environment_beats_default(tmp_path):
    env = {"TWIN_DB": "/env/twin.db", "TWIN_SETTINGS": str(tmp_path / "none.toml")}
    assert str(get_settings(env={"TWIN_SETTINGS": str(tmp_path / "x")}).db_path) == "data/twin.db"
    assert str(get_settings(env=env).db_path) == "/env/twin.db"
    assert str(get_settings(env=env, db_path="/arg.db").db_path) == "/arg.db"
    assert get_settings(env={**env, "TWIN_API_PORT": "6000"}).api_port == 6000


def test_settings_file_thresholds_per_asset_and_token(tmp_path):
    f = tmp_path / "twin.toml"
    f.write_text('[thresholds]\ntemperature = 80\n[assets."pump-02".thresholds]\npressure = 70\n'
                 '[api]\ntoken = "s3cret"\n')
    s = get_settings(env={"TWIN_SETTINGS": str(f)})
    assert s.thresholds() == {**THRESHOLDS, "temperature": 80.0}
    assert s.thresholds("pump-02") == {**THRESHOLDS, "temperature": 80.0, "pressure": 70.0}
    assert s.api_token == "s3cret"
    assert s.section("api") == {"token": "s3cret"} and s.section("notify", "webhook") == {}


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(SettingsError, match="api_port"):
        get_settings(env={"TWIN_API_PORT": "http", "TWIN_SETTINGS": str(tmp_path / "x")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds\n")
    with pytest.raises(SettingsError, match="bad.toml"):
        get_settings(env={"TWIN_SETTINGS": str(bad)})


def test_timestamps_round_trip_in_the_original_format():
    ms = to_ms("2026-02-10 14:30:00")
    assert format_ts(ms) == "2026-02-10 14:30:00"
    assert format_ts(ms + 250) == "2026-02-10 14:30:00.250"
    assert to_ms("2026-02-10T16:30:00+02:00") == ms
    with pytest.raises(ValueError):
        to_ms("soon")
    assert parse_duration("500ms") == 0.5 and parse_duration("2min") == 120
    with pytest.raises(ValueError):
        parse_duration("-1s")
