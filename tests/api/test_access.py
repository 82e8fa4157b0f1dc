"""Read access: an optional read token (bearer or basic auth), required beyond loopback."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twinlib.api.auth import is_loopback

READ = "read-secret-42"
WRITE = "write-secret-43"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def guarded(store, make_app):
    return make_app(store.path, API_READ_TOKEN=READ, API_TOKEN=WRITE).test_client()


def _basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("url", ["/data", "/data?limit=3", "/assets", "/assets/pump-01",
                                 "/alarms", "/kinds", "/metrics",
                                 "/export.csv?since=2026-02-10&until=2026-02-10 00:00:05"])
def test_reads_need_the_token(guarded, url):
    resp = guarded.get(url)
    assert resp.status_code == 401, url
    assert "Bearer" in resp.headers["WWW-Authenticate"] and "Basic" in resp.headers["WWW-Authenticate"]
    assert resp.get_json()["message"].isascii()
    assert guarded.get(url, headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    assert guarded.get(url, headers=_basic("grafana", READ)).status_code == 200
    assert guarded.get(url, headers={"Authorization": f"Bearer {WRITE}"}).status_code == 200
    assert guarded.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get(url, headers=_basic("grafana", "wrong")).status_code == 401


def test_fast_path_does_not_bypass_the_token(store, make_app):
    client = make_app(store.path, API_READ_TOKEN=READ).test_client()
    calls = []
    view = client.application.view_functions["data.get_data"]
    client.application.view_functions["data.get_data"] = lambda: calls.append(1) or view()
    assert client.get("/data").status_code == 401
    ok = client.get("/data", headers={"Authorization": f"Bearer {READ}"})
    assert ok.status_code == 200 and len(ok.get_json()) == 10
    assert calls == []  # the right token is still answered by the fast path
    assert client.get("/data", headers=_basic("x", READ)).status_code == 200
    assert calls == [1]  # basic auth goes through Flask


def test_open_routes_and_preflight(guarded, store, make_app):
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/openapi.json").status_code == 200
    assert guarded.get("/docs").status_code == 200
    assert guarded.get("/docs/swagger-ui.css").status_code == 200
    cors = make_app(store.path, API_READ_TOKEN=READ, CORS_ORIGINS="https://a.example").test_client()
    pre = cors.options("/data", headers={"Origin": "https://a.example",
                                         "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "Authorization"})
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "https://a.example"


def test_writes_keep_their_own_token(guarded):
    body = {"readings": [{"asset_id": "pump-01", "timestamp": "2026-02-10 04:00:00",
                          "temperature": 60.0, "vibration": 0.5, "pressure": 10.0}]}
    read_only = guarded.post("/readings", json=body, headers={"Authorization": f"Bearer {READ}"})
    assert read_only.status_code == 401
    assert guarded.post("/readings", json=body,
                        headers={"Authorization": f"Bearer {WRITE}"}).status_code == 200


def test_wrong_read_tokens_are_rate_limited(store, make_app):
    client = make_app(store.path, API_READ_TOKEN=READ, AUTH_FAILURES_MAX=3).test_client()
    for _ in range(3):
        assert client.get("/assets", headers={"Authorization": "Bearer guess"}).status_code == 401
    blocked = client.get("/assets", headers={"Authorization": f"Bearer {READ}"})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1


def test_spec_documents_read_security_when_configured(guarded):
    spec = guarded.get("/openapi.json").get_json()
    assert {"readBearer", "readBasic"} <= set(spec["components"]["securitySchemes"])
    op = spec["paths"]["/assets"]["get"]
    assert {"readBearer": []} in op["security"] and "401" in op["responses"]
    assert "security" not in spec["paths"]["/health"]["get"]


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                       ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                       ("::", False), ("192.168.1.5", False), ("plant-pc", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_twin_api_refuses_to_bind_beyond_loopback_without_a_read_token(tmp_path):
    env = {**os.environ, "TWIN_SETTINGS": str(tmp_path / "none.toml"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TWIN_API_READ_TOKEN", None)
    proc = subprocess.run([sys.executable, "-m", "twinlib", "api", "--host", "0.0.0.0",
                           "--db", str(tmp_path / "x.db")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "refusing to serve on 0.0.0.0" in proc.stderr and "TWIN_API_READ_TOKEN" in proc.stderr


def test_open_reads_is_an_explicit_choice_with_a_warning(tmp_path):
    env = {**os.environ, "TWIN_SETTINGS": str(tmp_path / "none.toml"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TWIN_API_READ_TOKEN", None)
    # an address no interface here has (TEST-NET-1): gunicorn cannot bind it and exits
    proc = subprocess.run([sys.executable, "-m", "twinlib", "api", "--host", "192.0.2.1",
                           "--port", "1", "--open-reads", "--db", str(tmp_path / "x.db")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert "refusing" not in proc.stderr
    assert "WARNING: serving on 192.0.2.1 without a read token" in proc.stderr


@pytest.mark.parametrize("published, refused", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_behind_port_publishing_the_published_address_decides(tmp_path, published, refused):
    """In a container the API binds 0.0.0.0; compose says where the port is published."""
    env = {**os.environ, "TWIN_SETTINGS": str(tmp_path / "none.toml"), "TWIN_PUBLISHED_HOST": published,
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TWIN_API_READ_TOKEN", None)
    # an address no interface here has (TEST-NET-1): past the check gunicorn cannot bind it and exits
    proc = subprocess.run([sys.executable, "-m", "twinlib", "api", "--host", "192.0.2.1", "--port", "1",
                           "--db", str(tmp_path / "x.db")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert ("refusing to serve on 0.0.0.0" in proc.stderr) is refused
    assert ("refusing" in proc.stderr) is refused
