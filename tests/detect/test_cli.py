"""`twin detect`, `twin alarms` and `twin detect --evaluate` from the command line."""
import json

from twinlib.cli import main


def test_detect_then_alarms_list_and_ack(store, tmp_db, capsys, monkeypatch, tmp_path):
    store.close()
    settings = tmp_path / "twin.toml"
    settings.write_text('[thresholds]\nvibration = 0.3\n')
    monkeypatch.setenv("TWIN_SETTINGS", str(settings))
    assert main(["detect", "--db", str(tmp_db)]) == 0
    out = capsys.readouterr().out
    assert "raised" in out and "High vibration" in out
    assert "checked 32,400 readings" in out
    assert main(["detect", "--db", str(tmp_db)]) == 0      # nothing new: nothing repeated
    assert "0 raised, 0 escalated, 0 cleared" in capsys.readouterr().out
    assert main(["alarms", "--db", str(tmp_db), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["rule"] == "vibration_high" for r in rows)
    alert_id = rows[0]["id"]
    assert main(["alarms", "--db", str(tmp_db), "ack", str(alert_id), "--by", "ops"]) == 0
    assert f"alarm #{alert_id} acknowledged by ops" in capsys.readouterr().out
    assert main(["alarms", "list", "--db", str(tmp_db), "--unacked", "--json"]) == 0
    left = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert alert_id not in left and len(left) == len(rows) - 1
    assert main(["alarms", "--db", str(tmp_db), "ack", "99999", "--by", "ops"]) == 2
    assert "no alarm with id 99999" in capsys.readouterr().err


def test_detect_on_missing_database_is_a_clear_error(tmp_db, capsys):
    assert main(["detect", "--db", str(tmp_db)]) == 2
    assert not tmp_db.exists()
    assert capsys.readouterr().err.startswith("twin detect:")


def test_detect_evaluate_prints_rules_and_detectors(capsys):
    assert main(["detect", "--evaluate", "--assets", "1", "--hours", "10", "--train-hours", "6",
                 "--fault-rate", "3", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    for method in ("seed thresholds", "alarm rules", "zscore", "ewma", "cusum", "pca", "iforest",
                   "twin"):
        assert method in out
    assert main(["detect", "--evaluate", "--hours", "5", "--train-hours", "6"]) == 2
