"""The dashboard's alarm panel: standing alarms with text badges, Ack with a note and a user,
shelving that expires on the panel's clock, history filters and pages, EEMUA figures."""
from __future__ import annotations

import pytest

from twinlib.config import get_settings
from twinlib.dashboard.alarms import AlarmPanel

T = 1_770_685_200_000  # 2026-02-10 01:00:00


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock(T + 60_000)


@pytest.fixture
def panel(store, clock, tmp_path):
    settings = get_settings(settings_file=tmp_path / "none.toml", alarm_user="shift-lead")
    p = AlarmPanel(store, settings, clock=clock)
    p.refresh()
    return p


def test_a_cleared_alarm_stands_until_acked_with_user_and_note(panel, store):
    a = store.open_alert("pump-01", "pressure_high", "pressure", "critical", "pump-01 pressure", T)
    store.clear_alert(a, T + 20_000)
    panel.refresh()
    assert [r["id"] for r in panel.alarms] == [a]
    text = panel._rows.children[0].children[0].value
    assert "CLEARED" in text and "UNACK" in text and "critical" in text
    assert panel.counts["unacknowledged"] == 1
    assert "1 unacknowledged" in panel.list._header.value
    button = panel.buttons[a]
    assert button.description == "Ack"
    panel.note_text.value = "valve reseated"
    button.click()
    row = store.get_alert(a)
    assert (row["acked_by"], row["ack_note"]) == ("shift-lead", "valve reseated")
    assert panel.alarms == [] and panel.counts["unacknowledged"] == 0
    assert panel.note_text.value == ""
    [entry] = store.list_audit()
    assert (entry["action"], entry["actor"], entry["note"]) == ("ack", "shift-lead", "valve reseated")


def test_the_name_typed_and_the_logged_in_user(store, clock, tmp_path):
    a = store.open_alert("pump-01", "r1", None, "warning", "m", T)
    b = store.open_alert("pump-01", "r2", None, "warning", "m", T + 1)
    p = AlarmPanel(store, None, clock=clock)
    p.refresh()
    p.by_text.value = "op-ana"
    p.buttons[a].click()
    assert store.get_alert(a)["acked_by"] == "op-ana"
    logged = AlarmPanel(store, None, user="jdoe", clock=clock)
    logged.refresh()
    logged.by_text.value = "someone-else"
    logged.buttons[b].click()
    assert store.get_alert(b)["acked_by"] == "jdoe"


def test_shelving_from_the_panel_expires_on_time(panel, store, clock):
    a = store.open_alert("pump-02", "vibration_high", "vibration", "warning", "shaking", T)
    panel.refresh()
    panel.list.on_shelve(panel.alarms[0])          # the row's Shelve button fills the form
    assert (panel.shelve_asset.value, panel.shelve_rule.value) == ("pump-02", "vibration_high")
    panel.shelve_button.click()
    assert "reason is required" in panel.message and store.list_suppressions() == []
    panel.shelve_reason.value = "bearing swap"
    panel.shelve_duration.value = 900
    panel.shelve_button.click()
    assert panel.counts["unacknowledged"] == 0 and panel.counts["shelved"] == 1
    assert "SHELVED until 01:16 UTC" in panel._rows.children[0].children[0].value
    assert "bearing swap" in panel.suppressed_html.value
    clock.now = T + 60_000 + 900_000 - 1
    panel.refresh()
    assert panel.counts["unacknowledged"] == 0
    clock.now = T + 60_000 + 900_000                 # the shelf ends exactly now
    panel.refresh()
    assert panel.counts["unacknowledged"] == 1
    assert "SHELVED" not in panel._rows.children[0].children[0].value
    assert "Nothing shelved" in panel.suppressed_html.value
    assert [e["action"] for e in store.list_audit()] == ["shelve"]
    assert store.get_alert(a, at=clock.now)["suppressed"] is None


def test_history_filters_and_pages(panel, store):
    ids = [store.open_alert("pump-01", f"r{k}", None, "critical" if k % 2 else "warning", "m",
                            T - k * 60_000) for k in range(25)]
    for k, a in enumerate(ids):
        store.clear_alert(a, T - k * 60_000 + 30_000)
    panel.refresh()
    rows = panel.show_history()
    assert [r["id"] for r in rows] == ids[:20] and not panel.h_older.disabled
    panel.h_older.click()
    assert [r["id"] for r in panel.history_rows] == ids[20:]
    assert panel.h_older.disabled and not panel.h_newer.disabled
    panel.h_newer.click()
    assert [r["id"] for r in panel.history_rows] == ids[:20]
    panel.h_severity.value = "critical"
    panel.h_since.value = "2026-02-10 00:50"
    panel.h_show.click()
    assert [r["id"] for r in panel.history_rows] == [ids[k] for k in (1, 3, 5, 7, 9)]
    assert "<table" in panel.history_html.value and "CLEARED" in panel.history_html.value
    panel.h_since.value = "not a time"
    panel.h_show.click()
    assert "not a time" in panel.message


def test_rates_view(panel, store, clock):
    for k in range(12):
        a = store.open_alert("pump-01", "vibration_high", None, "warning", "m", T + k * 1000)
        store.clear_alert(a, T + k * 1000 + 500)
    panel.views.selected_index = 2
    r = panel.rates
    assert r["alarms"] == 12 and r["peak_10min"]["alarms"] == 12 and r["flood_windows"] == 1
    assert "Peak in 10 min" in panel.rates_html.value and "pump-01 vibration_high" in panel.rates_html.value
    panel.rates_range.value = 3600
    assert panel.rates["hours"] == 1
