"""Assets: latest reading and status per asset, raw and downsampled history, forecasts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinlib.kinds import BUILTIN_KINDS

T0 = pd.Timestamp("2026-02-10 00:00:00")
KIND_SKAB = BUILTIN_KINDS["skab-testbed"].names


def _ms(text):
    return int(pd.Timestamp(text).value // 1_000_000)


def test_list_assets_has_latest_reading_and_status(client, fleet, store):
    wid = store.open_alert("pump-01", "temperature_high", "temperature", "critical",
                           "🔥 pump-01 temperature 91.0 °C > 90", _ms("2026-02-10 02:00:00"))
    assert wid
    resp = client.get("/assets")
    assert resp.status_code == 200
    body = resp.get_json()
    assert [a["asset_id"] for a in body] == ["pump-01", "pump-02", "pump-03"]
    last = fleet.readings.groupby("asset_id").tail(1).set_index("asset_id")
    for a in body:
        exp = last.loc[a["asset_id"]]
        assert a["latest"]["timestamp"] == exp["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert a["latest"]["temperature"] == pytest.approx(exp["temperature"])
        assert a["latest"]["label"] == exp["label"]
        assert a["kind"] == next(x["kind"] for x in fleet.assets if x["asset_id"] == a["asset_id"])
    by_id = {a["asset_id"]: a for a in body}
    assert by_id["pump-01"]["status"]["status"] == "critical"
    assert "pump-01 temperature" in by_id["pump-01"]["status"]["messages"][0]
    # The fleet's history ended long before the wall clock: the others are stale, and say so.
    assert by_id["pump-02"]["status"]["status"] == "stale"


def test_one_asset_and_unknown_asset(client):
    resp = client.get("/assets/pump-02")
    assert resp.status_code == 200
    assert resp.get_json()["asset_id"] == "pump-02"
    resp = client.get("/assets/pump-99")
    assert resp.status_code == 404 and resp.get_json()["parameter"] == "asset_id"


def test_registered_asset_without_readings_is_listed_with_null_latest(client, store):
    store.upsert_assets([{"asset_id": "motor-09", "kind": "motor", "params": {"rated_kw": 5}}])
    resp = client.get("/assets/motor-09")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["latest"] is None and body["kind"] == "motor" and body["params"] == {"rated_kw": 5}
    assert "motor-09" in [a["asset_id"] for a in client.get("/assets").get_json()]


def test_raw_history_is_oldest_first_within_range(client, fleet):
    since, until = "2026-02-10 01:00:00", "2026-02-10 01:09:59"
    body = client.get(f"/assets/pump-03/readings?since={since}&until={until}&limit=10000").get_json()
    df = fleet.readings[(fleet.readings.asset_id == "pump-03")
                        & (fleet.readings.timestamp >= since) & (fleet.readings.timestamp <= until)]
    assert body["bucket"] is None and body["truncated"] is False
    assert len(body["readings"]) == len(df) == 600
    assert [r["timestamp"] for r in body["readings"]] == df.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z").tolist()
    assert np.allclose([r["pressure"] for r in body["readings"]], df.pressure)


def test_raw_history_limit_keeps_the_newest_and_says_truncated(client, fleet):
    body = client.get("/assets/pump-01/readings?limit=5").get_json()
    assert body["truncated"] is True
    tail = fleet.readings[fleet.readings.asset_id == "pump-01"].tail(5)
    assert [r["timestamp"] for r in body["readings"]] == tail.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z").tolist()


@pytest.mark.parametrize("bucket,freq", [("1m", "1min"), ("5m", "5min"), ("1h", "1h")])
def test_downsampled_history_matches_pandas_resample(client, fleet, bucket, freq):
    body = client.get(f"/assets/pump-01/readings?bucket={bucket}"
                      "&since=2026-02-10 00:00:00&until=2026-02-10 02:59:59").get_json()
    df = fleet.readings[fleet.readings.asset_id == "pump-01"].set_index("timestamp")
    exp = df[["temperature", "vibration", "pressure"]].resample(freq).agg(["min", "mean", "max", "count"])
    assert body["bucket"] == bucket
    assert len(body["buckets"]) == len(exp)
    for item, (ts, row) in zip(body["buckets"], exp.iterrows()):
        assert item["timestamp"] == ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert item["n"] == row[("temperature", "count")]
        for s in ("temperature", "vibration", "pressure"):
            for agg in ("min", "mean", "max"):
                assert item[s][agg] == pytest.approx(row[(s, agg)], rel=1e-9)


def test_downsampled_history_defaults_to_last_24h_of_the_asset(client):
    body = client.get("/assets/pump-02/readings?bucket=1h").get_json()
    assert body["until"] == "2026-02-10T02:59:59.000Z"
    assert body["since"] == "2026-02-09T02:59:59.000Z"
    assert [b["n"] for b in body["buckets"]] == [3600, 3600, 3600]


def test_downsample_range_too_long_is_400(client):
    resp = client.get("/assets/pump-01/readings?bucket=1m&since=2026-01-01&until=2026-02-10")
    assert resp.status_code == 400 and resp.get_json()["parameter"] == "since"


@pytest.mark.parametrize("query,param", [("bucket=2m", "bucket"), ("limit=0", "limit"),
                                         ("limit=10001", "limit"), ("since=x", "since")])
def test_history_bad_parameters(client, query, param):
    resp = client.get(f"/assets/pump-01/readings?{query}")
    assert resp.status_code == 400 and resp.get_json()["parameter"] == param


def test_history_unknown_asset_is_404(client):
    assert client.get("/assets/nope/readings?bucket=1m").status_code == 404


def test_forecast_reports_the_degrading_pump(tmp_path, make_app):
    # pump-01 runs hot at a steady 2 °C per hour toward the 85 °C threshold: a forecast must see
    # it and put the crossing ~5 h ahead; pump-02 is flat and gets no forecast.
    from twinlib.store import open_store
    rng = np.random.default_rng(3)
    n = 3600
    ts = pd.date_range("2026-02-10 00:00:00", periods=n, freq="1s")
    rows = []
    for asset, slope in (("pump-01", 2.0), ("pump-02", 0.0)):
        temp = 73.0 + slope * np.arange(n) / 3600 + rng.normal(0, 0.2, n)
        rows.append(pd.DataFrame({"timestamp": ts, "asset_id": asset, "temperature": temp,
                                  "vibration": 0.2 + rng.normal(0, 0.005, n),
                                  "pressure": 40 + rng.normal(0, 0.2, n)}))
    s = open_store(tmp_path / "fc.db", create=True)
    s.load_readings(pd.concat(rows, ignore_index=True))
    s.close()
    client = make_app(tmp_path / "fc.db").test_client()
    body = client.get("/assets/pump-01/forecast").get_json()
    assert body["asset_id"] == "pump-01" and body["as_of"] == "2026-02-10T00:59:59.000Z"
    temp = [f for f in body["forecasts"] if f["sensor"] == "temperature"]
    assert len(temp) == 1
    assert temp[0]["threshold"] == 85.0
    assert temp[0]["hours_to_threshold"] == pytest.approx(5.0, abs=0.5)
    assert temp[0]["eta_low"] <= temp[0]["eta"]
    assert temp[0]["coverage"] == pytest.approx(0.8)
    assert temp[0]["eta_low"] <= temp[0]["eta_expected"] <= temp[0]["eta"]
    assert 0 < temp[0]["expected_hours_to_threshold"] <= temp[0]["hours_to_threshold"]
    assert temp[0]["curve_hours_to_threshold"] > 0     # the curve the range is built on
    flat = client.get("/assets/pump-02/forecast").get_json()
    assert flat["forecasts"] == []
    assert client.get("/assets/pump-77/forecast").status_code == 404


def test_kinds_and_an_asset_of_another_kind_with_units_and_location(client, store):
    kinds = {k["name"]: k for k in client.get("/kinds").get_json()}
    assert {"pump", "skab-testbed", "machine-temperature"} <= set(kinds)
    pump = {s["name"]: s for s in kinds["pump"]["signals"]}
    assert pump["temperature"]["unit"] == "°C" and pump["temperature"]["limits"]["high"]["warning"] == 85.0
    assert client.get("/kinds/skab-testbed").get_json()["name"] == "skab-testbed"
    assert client.get("/kinds/fan").status_code == 404
    store.upsert_assets([{"asset_id": "bed-1", "kind": "skab-testbed", "location": "lab/bench-2",
                          "signals": list(KIND_SKAB)}])
    row = {"asset_id": ["bed-1"], "ts": [1_770_000_000_000]} | {s: [1.0 + i] for i, s in enumerate(KIND_SKAB)}
    store.load_readings(pd.DataFrame(row))
    body = client.get("/assets/bed-1").get_json()
    assert body["kind"] == "skab-testbed" and body["location"] == "lab/bench-2"
    assert [(s["name"], s["unit"]) for s in body["signals"]][:3] == [
        ("Accelerometer1RMS", "g"), ("Accelerometer2RMS", "g"), ("Current", "A")]
    assert body["latest"]["Volume_Flow_RateRMS"] == 8.0 and "temperature" not in body["latest"]
    assert [a["asset_id"] for a in client.get("/assets?location=lab").get_json()] == ["bed-1"]
    assert client.get("/assets?location=lab/bench").get_json() == []
    assert client.get("/assets?location=a//b").status_code == 400
    assert "bed-1" not in [a["asset_id"] for a in client.get("/assets?kind=pump").get_json()]
    hist = client.get("/assets/bed-1/readings?bucket=1m&since=2026-02-01").get_json()
    assert hist["buckets"][0]["Current"] == {"min": 3.0, "mean": 3.0, "max": 3.0}
