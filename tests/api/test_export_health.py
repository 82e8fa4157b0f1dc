"""CSV export of a time range (re-importable) and the health endpoint."""
from __future__ import annotations

import io
import os

import pandas as pd
import pytest

from twinlib.ingest import read_csv


def test_export_round_trips_through_the_csv_import(client, store):
    resp = client.get("/export.csv?since=2026-02-10 00:59:00&until=2026-02-10 01:58:59")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    text = resp.get_data(as_text=True)
    assert text.splitlines()[0] == "timestamp,asset_id,temperature,vibration,pressure,label,load,speed,ambient"
    back = read_csv(io.StringIO(text))
    assert back.rejects == []
    exp = store.window(int(pd.Timestamp("2026-02-10 00:59:00").value // 10**6),
                       int(pd.Timestamp("2026-02-10 01:58:59").value // 10**6))
    assert len(back.clean) == len(exp) == 3600 * 3
    got = back.clean.sort_values(["ts", "asset_id"]).reset_index(drop=True)
    exp = exp.sort_values(["ts", "asset_id"]).reset_index(drop=True)
    assert got["ts"].tolist() == exp["ts"].tolist()
    assert got["asset_id"].tolist() == exp["asset_id"].tolist()
    for c in ("temperature", "vibration", "pressure", "load", "speed", "ambient"):
        assert got[c].to_numpy() == pytest.approx(exp[c].to_numpy())
    assert got["label"].tolist() == exp["label"].tolist()


def test_export_spans_several_slices_without_gaps_or_repeats(client, monkeypatch):
    from twinlib.api.views import export
    monkeypatch.setattr(export, "SLICE_MS", 7_000)  # many slices over the range
    text = client.get("/export.csv?since=2026-02-10 02:00:00&until=2026-02-10 02:01:39"
                      "&asset=pump-02").get_data(as_text=True)
    lines = text.strip().splitlines()[1:]
    stamps = [ln.split(",")[0] for ln in lines]
    assert len(stamps) == 100 and len(set(stamps)) == 100
    assert stamps[0] == "2026-02-10 02:00:00" and stamps[-1] == "2026-02-10 02:01:39"
    assert {ln.split(",")[1] for ln in lines} == {"pump-02"}


def test_export_empty_range_is_just_the_header(client):
    text = client.get("/export.csv?since=2030-01-01&until=2030-01-02").get_data(as_text=True)
    assert text.strip().count("\n") == 0 and text.startswith("timestamp,")


@pytest.mark.parametrize("query,param,status", [
    ("until=2026-02-11", "since", 400), ("since=2026-02-10", "until", 400),
    ("since=2026-02-11&until=2026-02-10", "until", 400), ("since=x&until=2026-02-10", "since", 400),
    ("since=2026-02-10&until=2026-02-11&asset=nope", "asset", 404),
])
def test_export_parameter_errors(client, query, param, status):
    resp = client.get(f"/export.csv?{query}")
    assert resp.status_code == status and resp.get_json()["parameter"] == param


def test_export_too_large_is_refused_not_truncated(client, monkeypatch):
    from twinlib.api.views import export
    monkeypatch.setattr(export, "MAX_EXPORT_ROWS", 100)
    resp = client.get("/export.csv?since=2026-02-10&until=2026-02-11")
    assert resp.status_code == 400 and "32400" in resp.get_json()["message"]


def test_health_reports_newest_reading_and_its_age(client):
    body = client.get("/health").get_json()
    assert body["status"] == "ok" and body["database"] == "reachable"
    assert body["newest_reading"] == "2026-02-10T02:59:59.000Z"
    assert body["max_id"] == 32400
    newest = pd.Timestamp("2026-02-10 02:59:59", tz="UTC")
    checked = pd.Timestamp(body["checked_at"])
    assert checked.tzinfo is not None  # ISO 8601 with Z: no client reads it as local time
    assert body["age_s"] == pytest.approx((checked - newest).total_seconds(), abs=1.5)


def test_health_on_empty_database(tmp_path, make_app):
    from twinlib.store import open_store
    open_store(tmp_path / "e.db", create=True).close()
    body = make_app(tmp_path / "e.db").test_client().get("/health").get_json()
    assert body["newest_reading"] is None and body["age_s"] is None and body["max_id"] == 0


def test_health_notices_a_deleted_database(tmp_path, make_app, fleet):
    from twinlib.store import open_store
    db = tmp_path / "gone.db"
    s = open_store(db, create=True)
    s.load_readings(fleet.readings.head(10))
    s.close()
    client = make_app(db).test_client()
    assert client.get("/health").status_code == 200
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.remove(f"{db}{suffix}")
    resp = client.get("/health")
    assert resp.status_code == 503
    assert not db.exists()
