"""Who acknowledges when no one is logged in: TWIN_USER, else [alarms] user (Settings.alarm_user)."""
from __future__ import annotations

from twinlib.alarms import resolve_user
from twinlib.config import get_settings


def test_alarm_user_from_environment_then_settings_file(tmp_path):
    toml = tmp_path / "twin.toml"
    toml.write_text('[alarms]\nuser = "control-room"\n')
    assert get_settings(env={}, settings_file=toml).alarm_user == "control-room"
    assert get_settings(env={"TWIN_USER": "op-ana"}, settings_file=toml).alarm_user == "op-ana"
    assert get_settings(env={}, settings_file=tmp_path / "none.toml").alarm_user is None


def test_resolve_user_order(tmp_path):
    toml = tmp_path / "twin.toml"
    toml.write_text('[alarms]\nuser = "control-room"\n')
    s = get_settings(env={}, settings_file=toml)
    assert resolve_user(s, "jdoe", fallback="api") == "jdoe"
    assert resolve_user(s, "  ", fallback="api") == "control-room"
    assert resolve_user(None, None, fallback="api") == "api"
    assert resolve_user(None, None)      # the login name of the process, never empty
