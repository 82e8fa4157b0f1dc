"""`GET /assets/<id>` says, per signal, the alarm limits in force for that asset — the kind's, a
per-asset override, or limits learned from the asset's first hours — the values
`twinlib.detect.limits_in_force` gives (the dashboard's call), as the OpenAPI document says."""
from __future__ import annotations

import copy

import jsonschema
import numpy as np
import pandas as pd
import pytest

from twinlib.api import create_app
from twinlib.api.openapi import build_spec
from twinlib.config import get_settings
from twinlib.detect import AlarmEngine, limits_in_force
from twinlib.ingest import ingest_frame
from twinlib.kinds import builtin_kind
from twinlib.store import open_store

T0 = 1_770_681_600_000
SETTINGS = """
[assets."m-1"]
kind = "machine-temperature"
[assets."m-1".rules]
learn_limits_hours = 24
[assets."pump-01".thresholds]
temperature = 80
"""


def _schema(spec: dict, name: str) -> dict:
    """A component schema as plain JSON Schema (OpenAPI 3.0's ``nullable`` spelled out)."""

    def plain(node):
        if isinstance(node, list):
            return [plain(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: plain(v) for k, v in node.items() if k not in ("nullable", "example")}
        if "$ref" in out:
            out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/definitions/")
        if node.get("nullable"):
            return {"anyOf": [out, {"type": "null"}]}
        return out

    comps = copy.deepcopy(spec["components"]["schemas"])
    return {**plain(comps[name]), "definitions": {k: plain(v) for k, v in comps.items()}}


@pytest.fixture
def api(tmp_path):
    path = tmp_path / "twin.toml"
    path.write_text(SETTINGS, encoding="utf-8")
    settings = get_settings(env={}, settings_file=path, db_path=tmp_path / "twin.db")
    store = open_store(settings.db_path, create=True)
    rng = np.random.default_rng(5)
    n = 2 * 288                                    # two days at 5 minutes
    ingest_frame(store, pd.DataFrame({
        "ts": T0 + np.arange(n) * 300_000, "asset_id": "m-1",
        "temperature": 100 + rng.normal(0, 0.8, n)}), source="t",
        kind=builtin_kind("machine-temperature"))
    ingest_frame(store, pd.DataFrame({
        "ts": T0 + np.arange(30) * 1000, "asset_id": "pump-01",
        "temperature": 60 + rng.normal(0, 0.5, 30), "vibration": 0.3 + rng.normal(0, 0.01, 30),
        "pressure": 40 + rng.normal(0, 0.5, 30), "load": np.full(30, 0.8)}),
        source="t", kind=builtin_kind("pump"))
    AlarmEngine(store, settings=settings).process_new()
    app = create_app(settings)
    yield app.test_client(), store, settings, build_spec(app)
    store.close()


def test_learned_limits_are_listed_with_their_window(api):
    client, store, settings, spec = api
    resp = client.get("/assets/m-1")
    assert resp.status_code == 200
    body = resp.get_json()
    jsonschema.validate(body, _schema(spec, "Asset"))
    (sig,) = body["signals"]
    lim = sig["limits_in_force"]
    want = limits_in_force(store, "m-1", settings=settings)["temperature"]
    for side in ("high", "low"):
        got = lim[side]
        assert got["source"] == "learned" and got["status"] == "in force"
        assert got["warning"] == pytest.approx(want[side].warning)
        assert got["critical"] == pytest.approx(want[side].critical)
        assert got["learn_hours"] == 24 and got["k"] == 3.5
        assert got["learned_from"] == "2026-02-10T00:00:00.000Z"
        assert got["learned_to"] == "2026-02-11T00:00:00.000Z"
    assert lim["low"]["warning"] < 100 < lim["high"]["warning"] != 85     # not the kind's 85 °C
    assert lim["high"]["unit"] == "°C"


def test_kind_limits_and_a_per_asset_override(api):
    client, store, settings, spec = api
    body = client.get("/assets/pump-01").get_json()
    jsonschema.validate(body, _schema(spec, "Asset"))
    by_name = {s["name"]: s["limits_in_force"] for s in body["signals"]}
    assert set(by_name) == set(builtin_kind("pump").names)
    t = by_name["temperature"]["high"]
    assert (t["source"], t["warning"], t["critical"]) == ("override", 80.0, 90.0)
    assert t["setting"] == '[assets."pump-01".thresholds]'
    v = by_name["vibration"]["high"]
    assert (v["source"], v["warning"]) == ("kind", 0.8) and "setting" not in v
    assert by_name["pressure"]["low"]["source"] == "kind"
    assert by_name["temperature"]["low"] is None
    assert by_name["load"] == {"high": None, "low": None}        # a state signal: no limits


def test_the_list_keeps_its_shape(api):
    client, _, _, spec = api
    body = client.get("/assets").get_json()
    assert [a["asset_id"] for a in body] == ["m-1", "pump-01"]
    for asset in body:
        jsonschema.validate(asset, _schema(spec, "Asset"))
        assert all("limits_in_force" not in s for s in asset["signals"])
