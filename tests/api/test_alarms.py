"""Alarms: listing with filters, one alarm, acknowledging (token-protected)."""
from __future__ import annotations

import pytest

T = 1_770_685_200_000  # 2026-02-10 01:00:00


@pytest.fixture
def alarms(store):
    """Three alarms: pump-01 active critical, pump-02 active warning, pump-01 cleared."""
    a = store.open_alert("pump-01", "temperature_high", "temperature", "critical",
                         "pump-01 hot", T, peak_value=92.5, trigger_count=4)
    b = store.open_alert("pump-02", "pressure_low", "pressure", "warning", "pump-02 low", T + 1000)
    c = store.open_alert("pump-01", "vibration_high", "vibration", "warning", "pump-01 shaking",
                         T - 60_000)
    store.clear_alert(c, T - 30_000)
    return {"crit": a, "warn": b, "cleared": c}


def test_list_all_newest_first(client, alarms):
    body = client.get("/alarms").get_json()
    assert [a["id"] for a in body] == [alarms["warn"], alarms["crit"], alarms["cleared"]]
    crit = body[1]
    assert crit == {
        "id": alarms["crit"], "asset_id": "pump-01", "rule": "temperature_high",
        "sensor": "temperature", "severity": "critical", "state": "active", "message": "pump-01 hot",
        "started_at": "2026-02-10T01:00:00.000Z", "last_seen": "2026-02-10T01:00:00.000Z", "ended_at": None,
        "peak_value": 92.5, "trigger_count": 4, "acked": False, "acked_by": None, "acked_at": None,
    }
    assert body[2]["ended_at"] == "2026-02-10T00:59:30.000Z"


@pytest.mark.parametrize("query,expected", [
    ("state=active", ["warn", "crit"]), ("state=cleared", ["cleared"]),
    ("asset=pump-01", ["crit", "cleared"]), ("asset=pump-01&state=active", ["crit"]),
    ("acked=false", ["warn", "crit", "cleared"]), ("acked=true", []), ("limit=1", ["warn"]),
    ("asset=pump-03", []),
])
def test_filters(client, alarms, query, expected):
    body = client.get(f"/alarms?{query}").get_json()
    assert [a["id"] for a in body] == [alarms[k] for k in expected]


@pytest.mark.parametrize("query,param", [("state=open", "state"), ("acked=maybe", "acked"),
                                         ("limit=0", "limit"), ("limit=1001", "limit")])
def test_bad_filters_are_400(client, alarms, query, param):
    resp = client.get(f"/alarms?{query}")
    assert resp.status_code == 400 and resp.get_json()["parameter"] == param


def test_unknown_asset_filter_is_404(client, alarms):
    assert client.get("/alarms?asset=pump-42").status_code == 404


def test_get_one(client, alarms):
    assert client.get(f"/alarms/{alarms['warn']}").get_json()["message"] == "pump-02 low"
    assert client.get("/alarms/999999").status_code == 404
    assert client.get("/alarms/99999999999999999999999").status_code == 404
    assert client.get("/alarms/abc").status_code == 404


def test_acknowledge(client, alarms, auth, store):
    resp = client.post(f"/alarms/{alarms['crit']}/ack", json={"by": "operator-7"}, headers=auth)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["acked"] is True and body["acked_by"] == "operator-7"
    assert body["acked_at"] is not None
    assert store.get_alert(alarms["crit"])["acked"] == 1
    assert [a["id"] for a in client.get("/alarms?acked=true").get_json()] == [alarms["crit"]]
    # A second acknowledgement keeps the first one (the audit trail is not overwritten).
    again = client.post(f"/alarms/{alarms['crit']}/ack", json={"by": "someone-else"}, headers=auth)
    assert again.status_code == 200 and again.get_json()["acked_by"] == "operator-7"


def test_acknowledge_without_body_uses_api_as_name(client, alarms, auth):
    body = client.post(f"/alarms/{alarms['warn']}/ack", headers=auth).get_json()
    assert body["acked_by"] == "api"


@pytest.mark.parametrize("body", [{"by": ""}, {"by": "   "}, {"by": 5}, [1, 2], {"by": "x" * 101}])
def test_acknowledge_bad_body_is_400(client, alarms, auth, store, body):
    resp = client.post(f"/alarms/{alarms['warn']}/ack", json=body, headers=auth)
    assert resp.status_code == 400
    assert store.get_alert(alarms["warn"])["acked"] == 0


def test_acknowledge_unknown_alarm_is_404(client, auth):
    assert client.post("/alarms/4242/ack", headers=auth).status_code == 404


def test_acknowledge_needs_the_token(client, alarms, store):
    resp = client.post(f"/alarms/{alarms['crit']}/ack")
    assert resp.status_code == 401 and "Bearer" in resp.headers["WWW-Authenticate"]
    resp = client.post(f"/alarms/{alarms['crit']}/ack", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401
    assert store.get_alert(alarms["crit"])["acked"] == 0


def test_acknowledge_refused_without_configured_token(make_app, store, alarms):
    client = make_app(store.path).test_client()
    resp = client.post(f"/alarms/{alarms['crit']}/ack", headers={"Authorization": "Bearer anything"})
    assert resp.status_code == 403
    assert store.get_alert(alarms["crit"])["acked"] == 0
