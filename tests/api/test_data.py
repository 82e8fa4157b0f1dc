"""GET /data: the original contract (latest 10, newest first, exact row shape) and its filters."""
from __future__ import annotations

import re

import pandas as pd
import pytest

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
KEYS = ["id", "timestamp", "temperature", "vibration", "pressure", "asset_id"]


def _expected(fleet, n, asset=None, since=None, until=None):
    df = fleet.readings
    if asset is not None:
        df = df[df["asset_id"] == asset]
    if since is not None:
        df = df[df["timestamp"] >= pd.Timestamp(since)]
    if until is not None:
        df = df[df["timestamp"] <= pd.Timestamp(until)]
    df = df.sort_values(["timestamp", "asset_id"], ascending=[False, True]).head(n)
    return [(r.asset_id, r.timestamp.strftime("%Y-%m-%d %H:%M:%S"), r.temperature, r.vibration,
             r.pressure) for r in df.itertuples()]


def _got(rows):
    return [(r["asset_id"], r["timestamp"], r["temperature"], r["vibration"], r["pressure"])
            for r in rows]


def test_default_is_latest_ten_newest_first_in_original_shape(client, fleet):
    resp = client.get("/data")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    rows = resp.get_json()
    assert len(rows) == 10
    for row in rows:
        assert list(row) == KEYS  # field order as the original's
        assert TS_RE.match(row["timestamp"])
        assert isinstance(row["id"], int)
    assert _got(rows) == _expected(fleet, 10)
    stamps = [r["timestamp"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)


def test_ids_are_the_stored_row_ids(client, store):
    rows = client.get("/data?limit=5").get_json()
    stored = {x.id: x for x in store.after(0, limit=10**7)}
    for r in rows:
        x = stored[r["id"]]
        assert x.asset_id == r["asset_id"]
        assert pd.Timestamp(x.ts, unit="ms").strftime("%Y-%m-%d %H:%M:%S") == r["timestamp"]


@pytest.mark.parametrize("limit", [1, 37, 1000])
def test_limit(client, fleet, limit):
    rows = client.get(f"/data?limit={limit}").get_json()
    assert _got(rows) == _expected(fleet, limit)


def test_asset_filter(client, fleet):
    rows = client.get("/data?asset=pump-02&limit=20").get_json()
    assert {r["asset_id"] for r in rows} == {"pump-02"}
    assert _got(rows) == _expected(fleet, 20, asset="pump-02")


def test_since_until_inclusive(client, fleet):
    since, until = "2026-02-10 01:00:00", "2026-02-10 01:00:04"
    rows = client.get(f"/data?since={since}&until={until}&limit=1000").get_json()
    assert len(rows) == 5 * 3  # 5 seconds (both ends included) × 3 pumps
    assert _got(rows) == _expected(fleet, 1000, since=since, until=until)


@pytest.mark.parametrize("since", ["2026-02-10T01:00:00Z", "2026-02-10T02:00:00+01:00",
                                   "1770685200000", "2026-02-10 01:00:00.000"])
def test_time_formats_are_equivalent(client, since):
    base = client.get("/data?since=2026-02-10 01:00:00&until=2026-02-10 01:00:01").get_json()
    rows = client.get("/data", query_string={"since": since, "until": "2026-02-10 01:00:01"}).get_json()
    assert rows == base and len(base) == 6


def test_range_with_nothing_in_it_is_empty(client):
    resp = client.get("/data?since=2030-01-01")
    assert resp.status_code == 200 and resp.get_json() == []


@pytest.mark.parametrize("query,param", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
    ("limit=1.5", "limit"), ("since=yesterday", "since"), ("until=2026-13-01", "until"),
    ("since=2026-02-10 02:00&until=2026-02-10 01:00", "until"), ("since=99999999999999999", "since"),
    ("asset=", "asset"),
])
def test_bad_parameters_are_400_naming_the_parameter(client, query, param):
    resp = client.get(f"/data?{query}")
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["parameter"] == param
    assert body["status"] == 400 and param in body["message"]


def test_unknown_asset_is_404(client):
    resp = client.get("/data?asset=pump-99")
    assert resp.status_code == 404
    assert resp.get_json()["parameter"] == "asset"


def test_known_asset_with_no_readings_in_range_is_empty_not_404(client):
    resp = client.get("/data?asset=pump-01&since=2030-01-01")
    assert resp.status_code == 200 and resp.get_json() == []


def test_injection_attempts_are_just_unknown_assets(client, store):
    resp = client.get("/data", query_string={"asset": "pump-01' OR '1'='1"})
    assert resp.status_code == 404
    resp = client.get("/data", query_string={"asset": "x'; DELETE FROM readings; --"})
    assert resp.status_code == 404
    assert store.count() == 3 * 3 * 3600


def test_empty_database_gives_empty_list(tmp_path, make_app):
    from twinlib.store import open_store
    open_store(tmp_path / "empty.db", create=True).close()
    resp = make_app(tmp_path / "empty.db").test_client().get("/data")
    assert resp.status_code == 200 and resp.get_json() == []


def test_missing_sensor_values_are_null(tmp_path, make_app):
    from twinlib.store import open_store
    s = open_store(tmp_path / "nan.db", create=True)
    s.load_readings(pd.DataFrame({"ts": [1_770_681_600_000], "asset_id": ["a"],
                                  "temperature": [float("nan")], "vibration": [0.2],
                                  "pressure": [3.0]}))
    s.close()
    rows = make_app(tmp_path / "nan.db").test_client().get("/data").get_json()
    assert rows == [{"id": 1, "timestamp": "2026-02-10 00:00:00", "temperature": None,
                     "vibration": 0.2, "pressure": 3.0, "asset_id": "a"}]


def test_cached_timestamp_formatting_equals_format_seconds():
    import numpy as np

    from twinlib.api.jsonio import format_ts_cached
    from twinlib.timeutil import format_seconds as format_ts
    rng = np.random.default_rng(11)
    values = rng.integers(-10**12, 4 * 10**12, 20_000).tolist() + [0, 999, 1000, 1_770_681_600_000]
    for v in values + values:  # second pass hits the cache
        assert format_ts_cached(v) == format_ts(v)


@pytest.mark.parametrize("value", ["1899-12-31 23:59:59", "10000-01-01", "-2208988800001",
                                   "１２", "2026-02-10T00:00:00+99:00"])
def test_times_outside_the_accepted_years_or_odd_digits_are_400(client, value):
    resp = client.get("/data", query_string={"since": value})
    assert resp.status_code == 400 and resp.get_json()["parameter"] == "since"


# -- the WSGI shortcut for the parameterless request ----------------------------------------
def test_fast_path_answers_exactly_like_flask(store, make_app):
    fast = make_app(store.path).test_client().get("/data")
    slow = make_app(store.path, DATA_FAST_PATH=False).test_client().get("/data")
    assert fast.status_code == slow.status_code == 200
    assert fast.data == slow.data
    assert sorted(fast.headers.items()) == sorted(slow.headers.items())


def test_fast_path_takes_only_the_parameterless_get(client):
    calls = []
    view = client.application.view_functions["data.get_data"]
    client.application.view_functions["data.get_data"] = lambda: calls.append(1) or view()
    client.get("/data")
    assert calls == []  # served below Flask
    client.get("/data?limit=10")
    client.head("/data")
    client.get("/data", headers={"Origin": "http://x"})
    assert len(calls) == 3


def test_fast_path_failures_get_flasks_json_errors(tmp_path, make_app):
    resp = make_app(tmp_path / "missing.db").test_client().get("/data")
    assert resp.status_code == 503 and resp.get_json()["reason"] == "missing"
    assert not (tmp_path / "missing.db").exists()
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all" * 100)
    resp = make_app(bad).test_client().get("/data")
    assert resp.status_code == 503 and resp.get_json()["reason"] == "unreadable"


def test_cors_still_applies_to_data(make_app, store):
    client = make_app(store.path, CORS_ORIGINS="http://dash:8050").test_client()
    resp = client.get("/data", headers={"Origin": "http://dash:8050"})
    assert resp.status_code == 200 and len(resp.get_json()) == 10
    assert resp.headers["Access-Control-Allow-Origin"] == "http://dash:8050"


def test_fast_path_keeps_its_answer_only_while_nothing_is_written(store, make_app, monkeypatch):
    """The kept bytes are served while the store's change stamp holds; a write (another
    connection's commit) makes the next answer a fresh read that shows it."""
    app = make_app(store.path)
    client = app.test_client()
    first = client.get("/data")
    assert first.status_code == 200
    reader = app.extensions["twinlib.stores"].reader()  # this thread's, as the fast path's
    calls = []
    real_latest = reader.latest
    monkeypatch.setattr(reader, "latest", lambda *a, **k: calls.append(1) or real_latest(*a, **k))
    # PostgreSQL has no cheap change counter (stamp None): there every answer is a fresh read
    kept = reader.change_stamp() is not None
    again = client.get("/data")
    assert again.data == first.data   # nothing written: the same answer, kept or read again
    assert len(calls) == (0 if kept else 1)
    newest = first.get_json()[0]
    ts = pd.Timestamp(newest["timestamp"]) + pd.Timedelta(seconds=5)
    store.load_readings(pd.DataFrame([{"asset_id": newest["asset_id"], "timestamp": ts,
                                       "temperature": 71.5, "vibration": 0.5, "pressure": 41.0}]))
    after = client.get("/data")
    assert len(calls) == (1 if kept else 2)
    row = after.get_json()[0]
    assert row["temperature"] == 71.5 and row["timestamp"] == ts.strftime("%Y-%m-%d %H:%M:%S")
    assert client.get("/data").data == after.data and len(calls) == (1 if kept else 3)
