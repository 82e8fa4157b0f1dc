"""POST /readings: token-protected, validated like a CSV import, idempotent, rejects reported."""
from __future__ import annotations

import pytest


def _reading(i, asset="pump-09", **over):
    r = {"asset_id": asset, "timestamp": f"2026-03-01 00:00:{i:02d}", "temperature": 60.0 + i,
         "vibration": 0.3, "pressure": 40.0}
    r.update(over)
    return r


def _rows(path, asset):
    from twinlib.store import open_store
    with open_store(path) as st:
        if not st.has_asset(asset):
            return []
        df = st.window(asset=asset)
    return [(int(r.ts), _none(r.temperature), _none(r.vibration), _none(r.pressure), r.label,
             _none(getattr(r, "load", float("nan")))) for r in df.itertuples()]


def _none(v):
    return None if v is None or v != v else v


def test_batch_is_stored_and_served(client, auth, store):
    batch = [_reading(i) for i in range(5)]
    resp = client.post("/readings", json={"readings": batch}, headers=auth)
    assert resp.status_code == 200
    assert resp.get_json() == {"received": 5, "inserted": 5, "duplicates": 0, "rejected": [],
                               "notes": []}
    rows = _rows(store.path, "pump-09")
    assert [r[1] for r in rows] == [60.0, 61.0, 62.0, 63.0, 64.0]
    data = client.get("/data?asset=pump-09&limit=2").get_json()
    assert [d["timestamp"] for d in data] == ["2026-03-01 00:00:04", "2026-03-01 00:00:03"]


def test_same_batch_twice_is_idempotent(client, auth, store):
    batch = {"readings": [_reading(i) for i in range(3)]}
    client.post("/readings", json=batch, headers=auth)
    again = client.post("/readings", json=batch, headers=auth).get_json()
    assert again["inserted"] == 0 and again["duplicates"] == 3 and again["rejected"] == []
    assert len(_rows(store.path, "pump-09")) == 3


def test_bad_rows_are_rejected_by_position_and_the_rest_stored(client, auth, store):
    batch = [
        _reading(0),
        _reading(1, temperature=999.0),                  # physically impossible
        _reading(2, timestamp="not a time"),              # unparseable
        _reading(3, pressure=None),                       # missing sensor
        _reading(4, asset_id="bad asset id!"),            # invalid id
        _reading(0, temperature=11.0),                    # duplicate of index 0 in the batch
        _reading(6),
    ]
    body = client.post("/readings", json={"readings": batch}, headers=auth).get_json()
    assert body["received"] == 7 and body["inserted"] == 2
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5]
    assert "temperature 999" in rejected[1]["reason"]
    assert "unparseable timestamp" in rejected[2]["reason"]
    assert "missing pressure" in rejected[3]["reason"]
    assert "asset_id" in rejected[4]["reason"]
    assert "duplicate" in rejected[5]["reason"]
    assert rejected[1]["raw"] == batch[1]  # the reading as sent, for the client to fix
    assert [r[1] for r in _rows(store.path, "pump-09")] == [60.0, 66.0]


def test_integer_ms_timestamps_labels_and_operating_state(client, auth, store):
    batch = [{"asset_id": "pump-08", "timestamp": 1_772_323_200_123, "temperature": 50.5,
              "vibration": 0.2, "pressure": 30, "label": "healthy", "load": 0.8, "extra": 1}]
    body = client.post("/readings", json={"readings": batch}, headers=auth).get_json()
    assert body["inserted"] == 1
    assert body["notes"] == ["ignored unknown field(s): extra"]
    assert _rows(store.path, "pump-08") == [(1_772_323_200_123, 50.5, 0.2, 30.0, "healthy", 0.8)]


def test_extreme_numbers_are_rejected_rows_not_crashes(client, auth, store):
    batch = [_reading(0, temperature=1e300), _reading(1, timestamp=2**64 - 1),
             _reading(2, timestamp=-(2**62))]
    resp = client.post("/readings", json={"readings": batch}, headers=auth)
    assert resp.status_code == 200
    body = resp.get_json()
    assert [r["index"] for r in body["rejected"]] == [0, 1, 2]
    assert body["rejected"][1]["raw"]["timestamp"] == 2**64 - 1
    assert _rows(store.path, "pump-09") == []


@pytest.mark.parametrize("text", [
    '{"readings": [{"asset_id": "a", "timestamp": 1, "temperature": NaN}]}',
    '{"readings": [{"asset_id": "a", "timestamp": 1, "temperature": 1e400}]}',
    '{"readings": [{"asset_id": "a", "timestamp": 1, "temperature": ' + "9" * 400 + '}]}',
    '{"readings": ' + "[" * 5000 + "]" * 5000 + "}",
])
def test_non_json_numbers_and_deep_nesting_are_400(client, auth, text):
    resp = client.post("/readings", data=text, content_type="application/json", headers=auth)
    assert resp.status_code == 400 and resp.get_json()["parameter"] == "body"


def test_empty_batch(client, auth):
    body = client.post("/readings", json={"readings": []}, headers=auth).get_json()
    assert body["received"] == 0 and body["inserted"] == 0


@pytest.mark.parametrize("body,param", [
    ({"data": []}, "body"), ([_reading(0)], "body"), ({"readings": {}}, "readings"),
    ({"readings": [5]}, "readings[0]"), ({"readings": [_reading(0), "x"]}, "readings[1]"),
    ({"readings": [{"timestamp": "2026-03-01"}]}, "readings[0].asset_id"),
    ({"readings": [_reading(0, asset_id="")]}, "readings[0].asset_id"),
    ({"readings": [{"asset_id": "a"}]}, "readings[0].timestamp"),
    ({"readings": [_reading(0, timestamp=True)]}, "readings[0].timestamp"),
    ({"readings": [_reading(0, timestamp=[1.5])]}, "readings[0].timestamp"),
    ({"readings": [_reading(0, temperature="hot")]}, "readings[0].temperature"),
    ({"readings": [_reading(0, vibration=False)]}, "readings[0].vibration"),
    ({"readings": [_reading(0, label=3)]}, "readings[0].label"),
])
def test_malformed_batches_are_refused_whole(client, auth, store, body, param):
    before = store.count()
    resp = client.post("/readings", json=body, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["parameter"] == param
    assert store.count() == before


def test_too_many_readings_is_400(client, auth, monkeypatch):
    from twinlib.api.views import ingest
    monkeypatch.setattr(ingest, "MAX_BATCH", 3)
    resp = client.post("/readings", json={"readings": [_reading(i) for i in range(4)]}, headers=auth)
    assert resp.status_code == 400 and resp.get_json()["parameter"] == "readings"


def test_not_json_is_415_and_invalid_json_is_400(client, auth):
    resp = client.post("/readings", data="a,b\n1,2", content_type="text/csv", headers=auth)
    assert resp.status_code == 415
    resp = client.post("/readings", data="{not json", content_type="application/json", headers=auth)
    assert resp.status_code == 400 and resp.get_json()["parameter"] == "body"


def test_writes_need_the_right_token(client, store):
    batch = {"readings": [_reading(0)]}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer "}):
        resp = client.post("/readings", json=batch, headers=headers)
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert _rows(store.path, "pump-09") == []


def test_writes_refused_without_a_configured_token(make_app, store):
    client = make_app(store.path).test_client()
    resp = client.post("/readings", json={"readings": [_reading(0)]},
                       headers={"Authorization": "Bearer "})
    assert resp.status_code == 403
    assert "token" in resp.get_json()["message"]
    assert _rows(store.path, "pump-09") == []


def test_token_from_environment_and_settings_file(tmp_path, monkeypatch, store):
    from twinlib.api import create_app
    from twinlib.config import get_settings
    toml = tmp_path / "twin.toml"
    toml.write_text('[api]\ntoken = "from-file"\n')
    app = create_app(get_settings(db_path=store.path, settings_file=toml))
    ok = app.test_client().post("/readings", json={"readings": []},
                                headers={"Authorization": "Bearer from-file"})
    assert ok.status_code == 200
    monkeypatch.setenv("TWIN_API_TOKEN", "from-env")
    app = create_app(get_settings(db_path=store.path, settings_file=toml))
    c = app.test_client()
    assert c.post("/readings", json={"readings": []},
                  headers={"Authorization": "Bearer from-env"}).status_code == 200
    assert c.post("/readings", json={"readings": []},
                  headers={"Authorization": "Bearer from-file"}).status_code == 401


def test_readings_of_any_kind_are_stored_with_their_signals(client, auth, store):
    skab = {"asset_id": "bed-1", "kind": "skab-testbed", "timestamp": "2026-03-01 00:00:00",
            "Accelerometer1RMS": 0.02, "Accelerometer2RMS": 0.03, "Current": 1.2, "Pressure": 0.5,
            "Temperature": 70.1, "Thermocouple": 25.0, "Voltage": 230.0, "Volume_Flow_RateRMS": 32.0}
    nab = {"asset_id": "m-1", "kind": "machine-temperature", "timestamp": "2026-03-01 00:00:00",
           "temperature": 81.5}
    body = client.post("/readings", json={"readings": [skab, _reading(0), nab]},
                       headers=auth).get_json()
    assert (body["inserted"], body["rejected"]) == (3, [])
    assert store.asset("bed-1")["kind"] == "skab-testbed"
    assert store.latest(1, asset="bed-1")[0].values == {k: v for k, v in skab.items()
                                                        if k not in ("asset_id", "kind", "timestamp")}
    assert store.latest(1, asset="m-1")[0].values == {"temperature": 81.5}
    # the asset's kind is remembered: later readings need not say it
    later = {k: v for k, v in skab.items() if k != "kind"} | {"timestamp": "2026-03-01 00:00:01",
                                                               "Current": 999.0}
    body = client.post("/readings", json={"readings": [later]}, headers=auth).get_json()
    assert body["inserted"] == 1 and store.latest(1, asset="bed-1")[0].values["Current"] == 999.0
    data = client.get("/data?asset=bed-1&limit=1").get_json()[0]
    assert set(data) == {"id", "timestamp", "asset_id", *[k for k in skab
                                                          if k not in ("asset_id", "kind", "timestamp")]}
    bad = client.post("/readings", json={"readings": [dict(nab, kind="fan")]}, headers=auth)
    assert bad.status_code == 400 and "unknown kind 'fan'" in bad.get_json()["message"]
