"""What an attack on the running API found (issue 12), each kept fixed: a replaced or deleted
database is never served from a stale connection, busy writes are retried then answered 503 with
Retry-After, a read-only directory is served, every response carries security headers (and
``Vary: Origin`` when CORS lists origins), wrong tokens are rate-limited, a chunked body over the
limit is a 413, and the OpenAPI document is as strict as the server."""
from __future__ import annotations

import io
import os
import re
import shutil
import sqlite3
import subprocess
from contextlib import contextmanager

import pytest

from twinlib.api import stores as api_stores
from twinlib.api.openapi import build_spec
from twinlib.store import open_store

TOKEN = "reliability-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _db(path, readings):
    s = open_store(path, create=True)
    s.load_readings(readings)
    s.close()
    return path


# -- item 6: a deleted or replaced database ---------------------------------------------------
def test_a_replaced_database_is_reopened_never_served_stale(tmp_path, make_app, fleet):
    db = _db(tmp_path / "twin.db", fleet.readings[fleet.readings.asset_id == "pump-01"].head(20))
    client = make_app(db).test_client()
    assert {r["asset_id"] for r in client.get("/data").get_json()} == {"pump-01"}
    assert {r["asset_id"] for r in client.get("/data?limit=5").get_json()} == {"pump-01"}
    new = _db(tmp_path / "new.db", fleet.readings[fleet.readings.asset_id == "pump-02"].head(20))
    os.replace(new, db)  # a deployment swapping the file: new inode at the same path
    # Both the fast path and Flask's view read the new file, not the old inode.
    assert {r["asset_id"] for r in client.get("/data").get_json()} == {"pump-02"}
    assert {r["asset_id"] for r in client.get("/data?limit=5").get_json()} == {"pump-02"}
    assert client.get("/health").get_json()["max_id"] == 20


def test_health_is_503_when_the_file_is_replaced_by_garbage(tmp_path, make_app, fleet):
    db = _db(tmp_path / "twin.db", fleet.readings.head(30))
    client = make_app(db).test_client()
    assert client.get("/health").status_code == 200
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a database at all " * 500)
    os.replace(junk, db)
    for url in ("/health", "/data", "/data?limit=3", "/assets"):
        resp = client.get(url)
        assert resp.status_code == 503, url
        assert resp.get_json()["reason"] == "unreadable"


def test_health_is_503_when_replaced_by_a_database_that_is_not_twinlibs(tmp_path, make_app, fleet):
    db = _db(tmp_path / "twin.db", fleet.readings.head(30))
    client = make_app(db).test_client()
    assert client.get("/health").status_code == 200
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    os.replace(other, db)
    resp = client.get("/health")
    assert resp.status_code == 503 and resp.get_json()["reason"] == "missing"


def test_a_deleted_database_is_503_on_the_fast_path_too(tmp_path, make_app, fleet):
    db = _db(tmp_path / "twin.db", fleet.readings.head(30))
    client = make_app(db).test_client()
    assert client.get("/data").status_code == 200
    os.remove(db)
    resp = client.get("/data")
    assert resp.status_code == 503 and resp.get_json()["reason"] == "missing"


# -- item 11: busy writes -----------------------------------------------------------------------
@contextmanager
def _write_lock(db):
    """Another writer holding the database (an open write transaction)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def short_busy(monkeypatch):
    """Writers wait 50 ms for a lock instead of 5 s; counts the write stores opened."""
    opened = []
    real = api_stores.open_store

    def opener(path, **kw):
        store = real(path, **kw)
        if not kw.get("readonly") and not kw.get("immutable"):
            store.conn.execute("PRAGMA busy_timeout=50")
            opened.append(store)
        return store

    monkeypatch.setattr(api_stores, "open_store", opener)
    return opened


def _batch(fleet, n=5):
    rows = fleet.readings.head(n)
    return {"readings": [{"asset_id": r.asset_id, "timestamp": str(r.timestamp),
                          "temperature": r.temperature, "vibration": r.vibration,
                          "pressure": r.pressure} for r in rows.itertuples()]}


def test_a_write_that_stays_busy_is_503_busy_with_retry_after(tmp_path, make_app, fleet,
                                                               short_busy):
    db = _db(tmp_path / "twin.db", fleet.readings.head(10))
    client = make_app(db, API_TOKEN=TOKEN, WRITE_RETRY_PAUSE_S=0.01).test_client()
    with _write_lock(db):
        resp = client.post("/readings", json=_batch(fleet), headers=AUTH)
        ack = client.post("/alarms/1/ack", headers=AUTH)
    body = resp.get_json()
    assert resp.status_code == 503 and body["reason"] == "busy"
    assert resp.headers["Retry-After"] == "5"
    assert "busy" in body["message"] and "unreadable" not in body["message"]
    assert len(short_busy) == 3 + 3  # three attempts each for the POST and the acknowledgement
    assert ack.status_code == 503 and ack.get_json()["reason"] == "busy"


def test_a_busy_write_is_retried_and_succeeds_once_the_lock_is_gone(tmp_path, make_app, fleet,
                                                                    short_busy, monkeypatch):
    db = _db(tmp_path / "twin.db", fleet.readings.head(10))
    client = make_app(db, API_TOKEN=TOKEN, WRITE_RETRY_PAUSE_S=0.01).test_client()
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    real_sleep = api_stores.time.sleep

    def sleep(seconds):  # the other writer commits during the back-off
        if lock.in_transaction:
            lock.execute("COMMIT")
        real_sleep(seconds)

    monkeypatch.setattr(api_stores.time, "sleep", sleep)
    resp = client.post("/readings", json=_batch(fleet, 15), headers=AUTH)
    lock.close()
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["inserted"] == 5 and len(short_busy) == 2


# -- item 14: a read-only directory ----------------------------------------------------------
@contextmanager
def _read_only_dir(path):
    """Make ``path`` a directory nobody can create files in (root too: chattr +i)."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a directory read-only for root here (no chattr +i)")
        undo = ["chattr", "-i", str(path)]
    else:
        os.chmod(path, 0o555)
        undo = None
    try:
        probe = path / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("the directory stayed writable")
        yield path
    finally:
        if undo:
            subprocess.run(undo, check=True)
        else:
            os.chmod(path, 0o755)


def test_reads_work_from_a_read_only_directory(tmp_path, make_app, fleet):
    ro = tmp_path / "ro"
    ro.mkdir()
    db = _db(ro / "twin.db", fleet.readings.head(300))
    assert not (ro / "twin.db-shm").exists()  # a cleanly closed WAL database
    with _read_only_dir(ro):
        client = make_app(db, API_TOKEN=TOKEN).test_client()
        fast = client.get("/data")
        assert fast.status_code == 200 and len(fast.get_json()) == 10
        assert client.get("/data?limit=300").status_code == 200
        assert len(client.get("/data?limit=1000").get_json()) == 300
        assert client.get("/health").get_json()["max_id"] == 300
        assert client.get("/assets").status_code == 200
        export = client.get("/export.csv?since=2026-02-10&until=2026-02-11")
        assert export.status_code == 200 and export.data.count(b"\n") == 301  # header + rows
        write = client.post("/readings", json=_batch(fleet), headers=AUTH)
        assert write.status_code == 503 and write.get_json()["reason"] == "readonly"
        assert list(ro.iterdir()) == [db]  # nothing created beside it
    # Once writable again, a writer changes the file: the immutable reader must see it.
    s = open_store(db)
    s.load_readings(fleet.readings.iloc[300:310])
    s.close()
    assert client.get("/health").get_json()["max_id"] == 310


def test_a_read_only_directory_with_an_unmerged_wal_is_refused_and_says_why(tmp_path, make_app,
                                                                           fleet, caplog):
    src = tmp_path / "src"
    src.mkdir()
    writer = open_store(src / "twin.db", create=True)
    writer.conn.execute("PRAGMA wal_autocheckpoint=0")
    writer.load_readings(fleet.readings.head(50))
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(src / "twin.db", ro / "twin.db")
    shutil.copy(src / "twin.db-wal", ro / "twin.db-wal")  # readings only the log holds
    writer.close()
    assert (ro / "twin.db-wal").stat().st_size > 0
    with _read_only_dir(ro):
        resp = make_app(ro / "twin.db").test_client().get("/data")
    assert resp.status_code == 503 and resp.get_json()["reason"] == "unreadable"
    assert "directory is not writable" in caplog.text and "twin.db-wal" in caplog.text


# -- item 16: headers -------------------------------------------------------------------------
SECURITY = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer"}


@pytest.mark.parametrize("url", ["/data", "/data?limit=2", "/assets", "/nope", "/health",
                                 "/openapi.json"])
def test_every_response_carries_security_headers(client, url):
    resp = client.get(url)
    for key, value in SECURITY.items():
        assert resp.headers.get(key) == value, (url, key)
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


def test_fast_path_says_vary_origin_when_cors_lists_origins(store, make_app):
    client = make_app(store.path, CORS_ORIGINS="https://a.example").test_client()
    plain = client.get("/data")  # no Origin: the fast path answers
    assert "Origin" in plain.headers.get("Vary", "")
    slow = make_app(store.path, CORS_ORIGINS="https://a.example",
                    DATA_FAST_PATH=False).test_client().get("/data")
    assert sorted(plain.headers.items()) == sorted(slow.headers.items())
    assert "Origin" in client.get("/assets").headers.get("Vary", "")
    # "*" answers every origin alike: nothing varies.
    vary = make_app(store.path, CORS_ORIGINS="*").test_client().get("/data").headers.get("Vary", "")
    assert "Origin" not in vary


# -- item 16: token guesses ---------------------------------------------------------------------
def test_wrong_tokens_are_rate_limited_per_client(store, make_app):
    app = make_app(store.path, API_TOKEN=TOKEN, AUTH_FAILURES_MAX=3)
    client = app.test_client()
    bad = {"Authorization": "Bearer guess"}
    attacker = {"REMOTE_ADDR": "10.0.0.9"}
    codes = [client.post("/alarms/1/ack", headers=bad, environ_base=attacker).status_code
             for _ in range(3)]
    assert codes == [401, 401, 401]
    blocked = client.post("/alarms/1/ack", headers=bad, environ_base=attacker)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    # Even the right token is refused while blocked: a guess cannot be confirmed.
    assert client.post("/alarms/1/ack", headers=AUTH, environ_base=attacker).status_code == 429
    # Another client is not affected; a missing token is not a guess.
    other = {"REMOTE_ADDR": "10.0.0.10"}
    assert client.post("/alarms/1/ack", headers=AUTH, environ_base=other).status_code == 404
    for _ in range(5):
        assert client.post("/alarms/1/ack", environ_base=other).status_code == 401


def test_failure_limiter_window_and_bounded_memory():
    from twinlib.api.auth import FailureLimiter, client_key
    lim = FailureLimiter(2, 60.0, max_clients=100)
    lim.failed("a", now=0.0)
    assert lim.blocked_for("a", now=1.0) == 0.0
    lim.failed("a", now=1.0)
    assert lim.blocked_for("a", now=1.0) == pytest.approx(59.0)
    assert lim.blocked_for("a", now=60.5) == 0.0  # the window is over
    for i in range(10_000):
        lim.failed(f"c{i}", now=2.0)
    assert len(lim) == 100
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert client_key("::ffff:10.1.2.3") == "10.1.2.3"


# -- item 16: chunked bodies --------------------------------------------------------------------
def test_a_chunked_body_over_the_limit_is_413_not_cut(store, make_app):
    app = make_app(store.path, API_TOKEN=TOKEN, MAX_CONTENT_LENGTH=1000)
    body = b'{"readings": []}' + b" " * 2000
    environ = {"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked",
               "CONTENT_LENGTH": ""}  # what a server gives for a chunked body
    resp = app.test_client().post("/readings", input_stream=io.BytesIO(body),
                                  headers={**AUTH, "Content-Type": "application/json"},
                                  environ_overrides=environ)
    assert resp.status_code == 413 and resp.get_json()["parameter"] == "body"
    small = b'{"readings": []}' + b" " * 100
    resp = app.test_client().post("/readings", input_stream=io.BytesIO(small),
                                  headers={**AUTH, "Content-Type": "application/json"},
                                  environ_overrides=environ)
    assert resp.status_code == 200 and resp.get_json()["received"] == 0


# -- item 16: the spec is as strict as the server -----------------------------------------------
TIMES = ["2026-02-10", "2026-02-10 01:00", "2026-02-10T01:00:00Z", "2026-02-10T02:00:00+01:00",
         "1770685200000", "2026-02-10 01:00:00.000", " 2026-02-10", "2026-02-10 ", "2026-W06-2",
         "2026-02-10T14", "yesterday", "2026-02-10\n", "now", "2026-02-10T01:00:00,5"]


@pytest.mark.parametrize("text", TIMES)
def test_since_pattern_and_server_agree(client, text):
    spec = build_spec(client.application)
    param = next(p for p in spec["paths"]["/data"]["get"]["parameters"] if p["name"] == "since")
    documented = re.fullmatch(param["schema"]["pattern"].strip("^$"), text) is not None
    resp = client.get("/data", query_string={"since": text})
    assert (resp.status_code == 200) == documented, (text, resp.get_json())


def test_spec_refuses_nul_in_asset_like_the_server(client):
    spec = build_spec(client.application)
    param = next(p for p in spec["paths"]["/data"]["get"]["parameters"] if p["name"] == "asset")
    assert re.search(param["schema"]["pattern"], "pump\x00-01") is None
    assert re.search(param["schema"]["pattern"], "pump-01") is not None
    assert client.get("/data", query_string={"asset": "pump\x00-01"}).status_code == 400
