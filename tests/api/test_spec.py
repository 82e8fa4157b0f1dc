"""The OpenAPI document is generated from the app and matches it: the same operations, and
schemathesis finds nothing."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from twinlib.api import create_app
from twinlib.api.openapi import build_spec
from twinlib.config import get_settings

TOKEN = "schemathesis-token"


def _app(tmp, **config):
    settings = get_settings(db_path=tmp / "none.db", settings_file=tmp / "none.toml")
    return create_app(settings, test_config={"API_TOKEN": TOKEN, **config})


def _flask_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def test_spec_and_routes_name_the_same_operations(client):
    spec = client.get("/openapi.json").get_json()
    assert spec == build_spec(client.application)
    documented = {(path, m.upper()) for path, ops in spec["paths"].items() for m in ops}
    served = set()
    for rule in client.application.url_map.iter_rules():
        view = client.application.view_functions[rule.endpoint]
        if rule.endpoint == "static" or getattr(view, "_openapi_hidden", False):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((_flask_path(rule.rule), method))
    assert documented == served


def test_every_operation_documents_its_errors(tmp_path):
    spec = build_spec(_app(tmp_path))
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "200" in codes
            # these read no database
            if path not in ("/openapi.json", "/kinds", "/kinds/{name}", "/docs", "/metrics"):
                assert "503" in codes, (path, method)
            if "security" in op:
                assert {"401", "403"} <= codes, (path, method)
            params = [p["name"] for p in op.get("parameters", [])]
            if any(p not in ("asset_id", "alarm_id", "name") for p in params) or "requestBody" in op:
                assert "400" in codes, (path, method)


@pytest.fixture
def fuzz_app(store, make_app):
    """An app on the seeded fleet with two alarms to find and a write token."""
    store.open_alert("pump-01", "temperature_high", "temperature", "critical", "hot", 1_770_685_200_000)
    store.open_alert("pump-02", "pressure_low", "pressure", "warning", "low", 1_770_685_201_000)
    return make_app(store.path, API_TOKEN=TOKEN)


# The document the app serves is build_spec(app) (asserted above), so load it directly; each
# generated request is sent in-process to the fixture's app (WSGI transport).
schema = schemathesis.openapi.from_dict(build_spec(_app(Path(tempfile.gettempdir()))))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_nothing(case, fuzz_app):
    # Checks: no 5xx, status codes / content types / headers / bodies as documented, negative
    # data rejected with 4xx, auth enforced. Excluded: positive_data_acceptance — a schema cannot
    # say that "2026-13-45" is no date or that `until` must not precede `since`, so some
    # schema-valid requests rightly get a 400 naming the parameter (tested in test_data.py etc.).
    # Probes schemathesis sends on its own (the same request without auth, say) go to the
    # operation's schema.app; the case itself is sent to `app`.
    case.operation.schema.app = fuzz_app
    # identity: the in-process WSGI transport does not undo gzip (real HTTP clients do; gzip has
    # its own tests).
    case.call_and_validate(app=fuzz_app, headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Accept-Encoding": "identity"},
                           excluded_checks=[positive_data_acceptance])


def test_operations_written_out_elsewhere_are_used_as_they_are(client, monkeypatch):
    """``spec_alarms`` (the alarm work's document part) wins for the routes it names, and
    documents nothing the app does not serve."""
    import sys
    import types
    op = {"summary": "Alarms (written out).", "operationId": "listAlarms",
          "responses": {"200": {"description": "OK"}}}
    fake = types.ModuleType("twinlib.api.spec_alarms")
    fake.alarm_paths = lambda: {"/alarms": {"get": op}, "/not/served": {"get": op}}
    fake.alarm_schemas = lambda: {"AlarmX": {"type": "object"}}
    monkeypatch.setitem(sys.modules, "twinlib.api.spec_alarms", fake)
    spec = build_spec(client.application)
    assert spec["paths"]["/alarms"]["get"] == op
    assert "/not/served" not in spec["paths"]
    assert "AlarmX" in spec["components"]["schemas"] and "Asset" in spec["components"]["schemas"]
