"""`twin alarms` alarm management from the command line: ack with a note and the configured
user, shelve / unshelve, out of service, history pages, audit, EEMUA rates; --json prints the
API's shape."""
from __future__ import annotations

import json

import pytest

from twinlib.alarms import alarm_to_json
from twinlib.cli import main
from twinlib.store import open_store

T = 1_770_685_200_000  # 2026-02-10 01:00:00


@pytest.fixture
def db(store, tmp_db):
    a = store.open_alert("pump-01", "pressure_high", "pressure", "critical", "pump-01 pressure", T)
    store.clear_alert(a, T + 20_000)
    b = store.open_alert("pump-02", "vibration_high", "vibration", "warning", "pump-02 shaking",
                         T + 60_000)
    store.close()
    return {"db": str(tmp_db), "cleared": a, "active": b}


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_is_the_api_shape_and_cleared_alarms_stand(db, tmp_db, capsys):
    assert main(["alarms", "--db", db["db"], "--state", "standing", "--json"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [db["active"], db["cleared"]]
    with open_store(tmp_db) as st:
        assert rows[1] == alarm_to_json(st.get_alert(db["cleared"]))
    assert rows[1]["started_at"] == "2026-02-10T01:00:00.000Z"
    assert rows[1]["isa_state"] == "cleared_unacknowledged"


def test_ack_with_note_uses_the_configured_user_and_is_audited(db, capsys, monkeypatch):
    monkeypatch.setenv("TWIN_USER", "op-ana")
    assert main(["alarms", "--db", db["db"], "ack", str(db["cleared"]), "--note",
                 "valve reseated"]) == 0
    out = capsys.readouterr().out
    assert f"alarm #{db['cleared']} acknowledged by op-ana at 20" in out and "valve reseated" in out
    assert main(["alarms", "--db", db["db"], "--state", "standing", "--json"]) == 0
    assert [r["id"] for r in _lines(capsys.readouterr().out)] == [db["active"]]
    assert main(["alarms", "audit", "--db", db["db"], "--json"]) == 0
    got = _lines(capsys.readouterr().out)
    [entry] = got
    assert (entry["action"], entry["by"], entry["note"], entry["alert_id"]) == \
        ("ack", "op-ana", "valve reseated", db["cleared"])
    assert main(["alarms", "audit", "--db", db["db"]]) == 0
    assert "op-ana" in capsys.readouterr().out


def test_shelve_unshelve_and_out_of_service(db, capsys):
    args = ["alarms", "shelve", "pump-02", "vibration_high", "--for", "2h", "--reason",
            "bearing swap", "--by", "op", "--db", db["db"]]
    assert main(args) == 0
    assert "shelved by op until" in capsys.readouterr().out
    assert main(["alarms", "--db", db["db"], "suppressions", "--json"]) == 0
    [s] = _lines(capsys.readouterr().out)
    assert (s["kind"], s["rule"], s["reason"], s["in_force"]) == \
        ("shelved", "vibration_high", "bearing swap", True)
    assert main(["alarms", "--db", db["db"], "--state", "shelved", "--json"]) == 0
    assert [r["id"] for r in _lines(capsys.readouterr().out)] == [db["active"]]
    assert main(["alarms", "unshelve", "pump-02", "vibration_high", "--by", "op",
                 "--db", db["db"]]) == 0
    assert main(["alarms", "unshelve", "pump-02", "vibration_high", "--by", "op",
                 "--db", db["db"]]) == 2
    assert "no shelf in force" in capsys.readouterr().err
    assert main(["alarms", "oos", "pump-01", "--by", "maint", "--db", db["db"]]) == 2
    assert "--reason is required" in capsys.readouterr().err
    assert main(["alarms", "oos", "pump-01", "--reason", "overhaul", "--by", "maint",
                 "--db", db["db"]]) == 0
    assert main(["alarms", "oos", "pump-01", "--return", "--by", "maint", "--db", db["db"]]) == 0
    capsys.readouterr()
    assert main(["alarms", "audit", "--db", db["db"], "--json"]) == 0
    assert [e["action"] for e in _lines(capsys.readouterr().out)] == \
        ["return_to_service", "out_of_service", "unshelve", "shelve"]


@pytest.mark.parametrize("argv,message", [
    (["shelve", "pump-02", "r", "--for", "9d", "--reason", "x"], "at most"),
    (["shelve", "pump-02", "r", "--for", "soon", "--reason", "x"], "not a duration"),
    (["shelve", "pump-42", "r", "--for", "1h", "--reason", "x"], "unknown asset"),
    (["ack", "99999", "--by", "op"], "no alarm with id 99999"),
    (["history", "--cursor", "nope"], "cursor"),
    (["history", "--since", "garbage"], "--since"),
])
def test_bad_input_is_a_clear_error(db, capsys, argv, message):
    assert main(["alarms", *argv, "--db", db["db"]]) == 2
    err = capsys.readouterr().err
    assert message in err


def test_history_pages_with_a_cursor(db, capsys):
    assert main(["alarms", "history", "--db", db["db"], "--limit", "1", "--json"]) == 0
    cap = capsys.readouterr()
    first = [r["id"] for r in _lines(cap.out)]
    cursor = cap.err.split("--cursor ")[1].strip()
    assert main(["alarms", "history", "--db", db["db"], "--limit", "1", "--json",
                 "--cursor", cursor]) == 0
    cap = capsys.readouterr()
    assert first + [r["id"] for r in _lines(cap.out)] == [db["active"], db["cleared"]]
    assert "--cursor" not in cap.err
    assert main(["alarms", "history", "--db", db["db"], "--severity", "critical", "--json"]) == 0
    assert [r["id"] for r in _lines(capsys.readouterr().out)] == [db["cleared"]]


def test_rates(db, capsys):
    assert main(["alarms", "rates", "--db", db["db"], "--since", "2026-02-10 00:00",
                 "--until", "2026-02-10 02:00", "--operators", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["alarms"], r["hours"], r["operators"], r["per_operator_hour"]) == (2, 2, 2, 0.5)
    assert r["peak_10min"] == {"alarms": 2, "start": "2026-02-10T01:00:00.000Z"}
    assert main(["alarms", "rates", "--db", db["db"], "--since", "2026-02-10 00:00",
                 "--until", "2026-02-10 02:00"]) == 0
    out = capsys.readouterr().out
    assert "per operator-hour      1" in out and "peak in 10 min         2" in out
