"""A database made by the previous release (schema 2, before alarm management) upgrades to
schema 3 in place: every reading, alarm (with its acknowledgement), meta value and outbox row is
kept; the new columns start empty and the new tables work."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from twinlib.store import SchemaVersionError, open_store
from twinlib.store.sqlite import SCHEMA_VERSION

#: Made with the main branch before this change (schema 2): 2 pumps × 200 readings, 3 alarms
#: (one cleared and acknowledged), a detect cursor in meta.
FIXTURE_V2 = Path(__file__).parent.parent / "fixtures" / "twin-v2.db"
T = 1_770_685_200_000


def test_a_schema_2_database_upgrades_with_nothing_lost(tmp_path):
    db = tmp_path / "v2.db"
    shutil.copy(FIXTURE_V2, db)
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    old_alerts = con.execute("SELECT * FROM alerts ORDER BY id").fetchall()
    old_readings = con.execute("SELECT asset, ts, id, label, vals FROM readings ORDER BY id").fetchall()
    old_meta = dict(con.execute("SELECT key, value FROM meta WHERE key != 'schema_version'"))
    con.close()
    assert len(old_alerts) == 3 and len(old_readings) == 400
    with pytest.raises(SchemaVersionError, match="init-db"):
        open_store(db)
    with open_store(db, create=True) as st:        # what `twin init-db` does
        assert st.schema_version() == SCHEMA_VERSION == 3
        got = st.list_alerts(limit=None)
        assert sorted(tuple(a.values())[:15] for a in got) == [tuple(a) for a in old_alerts]
        assert all(a["ack_note"] is None for a in got)
        acked = [a for a in got if a["acked"]]
        assert [(a["acked_by"], a["acked_at"]) for a in acked] == [("operator-7", T - 20_000)]
        for k, v in old_meta.items():
            assert st.get_meta(k) == v
        assert st.count() == 400
        # the standing alarms now include nothing acknowledged and cleared
        assert {a["id"] for a in st.standing_alarms()} == {a["id"] for a in got if not a["acked"]}
        # the new tables work on the upgraded file
        st.shelve_alarm("pump-01", "temperature_high", by="op", reason="test", duration_s=60)
        active = [a for a in got if a["state"] == "active" and a["asset_id"] == "pump-01"]
        st.acknowledge_alert(active[0]["id"], "op", note="seen")
        assert [e["action"] for e in st.list_audit()] == ["ack", "shelve"]
    con = sqlite3.connect(db)
    assert con.execute("SELECT asset, ts, id, label, vals FROM readings ORDER BY id").fetchall() \
        == old_readings
    con.close()
    with open_store(db, create=True) as st:        # idempotent
        assert len(st.list_alerts(limit=None)) == 3 and len(st.list_audit()) == 2


def test_a_schema_2_postgresql_database_upgrades_with_nothing_lost(pg_url):
    """PostgreSQL: the schema-2 shape (no ack_note/suppressed columns, no alarm tables) is made
    by taking them away from a fresh store; `init-db` (create=True) adds them back, keeping rows."""
    import psycopg

    from twinlib.store.postgres import PG_SCHEMA_VERSION

    with open_store(pg_url, create=True) as st:
        a = st.open_alert("pump-01", "temperature_high", None, "critical", "hot", T)
        st.acknowledge_alert(a, "operator-7", T + 5)
        b = st.open_alert("pump-02", "pressure_low", None, "warning", "low", T + 10)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("ALTER TABLE alerts DROP COLUMN ack_note, DROP COLUMN suppressed")
        c.execute("DROP TABLE alarm_audit, alarm_suppressions")
        c.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        old = c.execute("SELECT * FROM alerts ORDER BY id").fetchall()
    with pytest.raises(SchemaVersionError):
        open_store(pg_url)
    with open_store(pg_url, create=True) as st:
        assert st.schema_version() == PG_SCHEMA_VERSION >= 3
        got = sorted(st.list_alerts(limit=None), key=lambda r: r["id"])
        assert [tuple(r.values())[:15] for r in got] == [tuple(r) for r in old]
        assert [r["id"] for r in st.standing_alarms()] == [b, a]   # active: acked or not
        assert st.list_audit() == []
        st.acknowledge_alert(b, "op", note="seen")
        assert [(e["action"], e["note"]) for e in st.list_audit()] == [("ack", "seen")]
