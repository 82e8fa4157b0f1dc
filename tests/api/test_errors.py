"""Errors are JSON everywhere: 503 for a missing/unreadable database (no file created), 404/405
for routes, 500 for bugs; debug mode is off; CORS follows the configured origins."""
from __future__ import annotations

import pytest

from twinlib.api import create_app

TOKEN = "errors-test-token"

GET_URLS = [
    "/data", "/data?asset=pump-01", "/assets", "/assets/pump-01", "/assets/pump-01/readings",
    "/assets/pump-01/readings?bucket=1m", "/assets/pump-01/forecast", "/alarms", "/alarms/1",
    "/health", "/export.csv?since=2026-02-10&until=2026-02-11",
]


@pytest.mark.parametrize("url", GET_URLS)
def test_missing_database_is_503_json_and_creates_nothing(tmp_path, make_app, url):
    db = tmp_path / "sub" / "missing.db"
    client = make_app(db).test_client()
    resp = client.get(url)
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == 503 and body["reason"] == "missing"
    assert not db.exists() and not db.parent.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url,body", [("/readings", {"readings": []}), ("/alarms/1/ack", None)])
def test_missing_database_refuses_writes_with_503_and_creates_nothing(tmp_path, make_app, url, body):
    db = tmp_path / "missing.db"
    client = make_app(db, API_TOKEN=TOKEN).test_client()
    resp = client.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 503
    assert not db.exists()


def test_file_that_is_not_a_database_is_503(tmp_path, make_app):
    db = tmp_path / "garbage.db"
    db.write_bytes(b"this is not an SQLite database, just text " * 100)
    before = db.read_bytes()
    resp = make_app(db).test_client().get("/data")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == 503 and body["reason"] == "unreadable"
    assert str(tmp_path) not in body["message"]  # no server paths in responses
    assert db.read_bytes() == before  # untouched


def test_database_without_tables_is_503(tmp_path, make_app):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    resp = make_app(db).test_client().get("/health")
    assert resp.status_code == 503 and resp.get_json()["reason"] == "missing"


def test_service_recovers_when_the_database_appears(tmp_path, make_app, fleet):
    from twinlib.store import open_store
    db = tmp_path / "later.db"
    client = make_app(db).test_client()
    assert client.get("/data").status_code == 503
    s = open_store(db, create=True)
    s.load_readings(fleet.readings.head(30))
    s.close()
    resp = client.get("/data")
    assert resp.status_code == 200 and len(resp.get_json()) == 10


def test_unknown_route_is_json_404(client):
    resp = client.get("/no/such/thing")
    assert resp.status_code == 404
    assert resp.mimetype == "application/json"
    assert resp.get_json()["status"] == 404
    assert b"<html" not in resp.data.lower()


def test_wrong_method_is_json_405_with_allow_header(client):
    resp = client.delete("/data")
    assert resp.status_code == 405
    assert resp.get_json()["status"] == 405
    assert "GET" in resp.headers["Allow"]


def test_unexpected_error_is_json_500_without_details(make_app, store):
    app = make_app(store.path)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    resp = app.test_client().get("/boom")
    assert resp.status_code == 500
    assert resp.mimetype == "application/json"
    assert b"secret internals" not in resp.data and b"Traceback" not in resp.data


def test_body_too_large_is_json_413(make_app, store):
    app = make_app(store.path, API_TOKEN=TOKEN, MAX_CONTENT_LENGTH=1000)
    resp = app.test_client().post("/readings", data=b"{" + b" " * 5000 + b"}",
                                  content_type="application/json",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 413 and resp.get_json()["status"] == 413


def test_debug_is_off_by_default(store, tmp_path):
    from twinlib.config import get_settings
    app = create_app(get_settings(db_path=store.path, settings_file=tmp_path / "x.toml"))
    assert app.debug is False
    assert app.config["DEBUG"] is False


# -- CORS ----------------------------------------------------------------------------------
def test_no_cors_headers_without_configured_origins(client):
    resp = client.get("/data", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_allows_configured_origin_only(make_app, store):
    client = make_app(store.path, CORS_ORIGINS="http://dash.local:8050, http://other:1").test_client()
    ok = client.get("/data", headers={"Origin": "http://dash.local:8050"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://dash.local:8050"
    assert "Origin" in ok.headers["Vary"]
    bad = client.get("/data", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in bad.headers


def test_cors_preflight(make_app, store):
    client = make_app(store.path, CORS_ORIGINS=["*"]).test_client()
    resp = client.options("/readings", headers={
        "Origin": "http://x", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]


def test_cors_origins_from_settings_file_and_environment(tmp_path, monkeypatch, store):
    from twinlib.config import get_settings
    toml = tmp_path / "twin.toml"
    toml.write_text('[api]\ncors_origins = ["http://from-file:1"]\n')
    settings = get_settings(db_path=store.path, settings_file=toml)
    client = create_app(settings).test_client()
    resp = client.get("/health", headers={"Origin": "http://from-file:1"})
    assert resp.headers["Access-Control-Allow-Origin"] == "http://from-file:1"
    monkeypatch.setenv("TWIN_API_CORS_ORIGINS", "http://from-env:2")  # the environment wins
    client = create_app(get_settings(db_path=store.path, settings_file=toml)).test_client()
    assert client.get("/health", headers={"Origin": "http://from-env:2"}).headers[
        "Access-Control-Allow-Origin"] == "http://from-env:2"
    assert "Access-Control-Allow-Origin" not in client.get(
        "/health", headers={"Origin": "http://from-file:1"}).headers
