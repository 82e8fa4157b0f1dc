"""REST conventions: ISO 8601 UTC times (the seed's one form on /data), cursor paging with
`next` links, ETag / If-None-Match, gzip, Swagger UI served offline."""
from __future__ import annotations

import gzip
import io
import re

import pandas as pd
import pytest

from twinlib.ingest import ingest_frame
from twinlib.store import open_store

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SEED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _mixed_precision_db(tmp_path):
    """One pump with readings on whole seconds and on half seconds."""
    path = tmp_path / "mixed.db"
    store = open_store(path, create=True)
    ts = ["2026-12-02 01:14:48", "2026-12-02 01:14:48.500", "2026-12-02 01:14:49",
          "2026-12-02 01:14:49.250", "2026-12-02 01:14:50"]
    frame = pd.DataFrame({"timestamp": ts, "asset_id": "pump-09", "temperature": 60.0,
                          "vibration": 0.5, "pressure": 10.0})
    assert ingest_frame(store, frame, source="test").inserted == 5
    store.close()
    return path


@pytest.mark.parametrize("fast", [True, False])
def test_data_has_one_time_form_that_pandas_parses(tmp_path, make_app, fast):
    app = make_app(_mixed_precision_db(tmp_path), DATA_FAST_PATH=fast)
    rows = app.test_client().get("/data").get_json()
    assert len(rows) == 5 and all(SEED.match(r["timestamp"]) for r in rows)
    # what the original's training script does with the answer
    df = pd.DataFrame(rows)
    parsed = pd.to_datetime(df["timestamp"])
    assert parsed.iloc[0] == pd.Timestamp("2026-12-02 01:14:50")
    assert parsed.iloc[1] == pd.Timestamp("2026-12-02 01:14:49")  # .250 dropped, not rounded
    assert set(rows[0]) == {"id", "timestamp", "temperature", "vibration", "pressure", "asset_id"}


def test_data_format_iso_keeps_full_precision(tmp_path, make_app):
    client = make_app(_mixed_precision_db(tmp_path)).test_client()
    rows = client.get("/data?format=iso").get_json()
    assert [r["timestamp"] for r in rows][:2] == ["2026-12-02T01:14:50.000Z",
                                                  "2026-12-02T01:14:49.250Z"]
    parsed = pd.to_datetime(pd.DataFrame(rows)["timestamp"])
    assert str(parsed.dt.tz) == "UTC"
    bad = client.get("/data?format=excel")
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "format"


def test_every_other_endpoint_answers_iso_utc(tmp_path, make_app):
    client = make_app(_mixed_precision_db(tmp_path)).test_client()
    asset = client.get("/assets/pump-09").get_json()
    assert asset["latest"]["timestamp"] == "2026-12-02T01:14:50.000Z"
    hist = client.get("/assets/pump-09/readings").get_json()
    assert [r["timestamp"] for r in hist["readings"]][1] == "2026-12-02T01:14:48.500Z"
    assert all(ISO.match(r["timestamp"]) for r in hist["readings"])
    health = client.get("/health").get_json()
    assert ISO.match(health["newest_reading"]) and ISO.match(health["checked_at"])


# -- paging ----------------------------------------------------------------------------------
def _next_from_link(resp):
    link = resp.headers.get("Link")
    if link is None:
        return None
    m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert m, link
    return m.group(1)


def test_assets_pages_follow_the_link_header(client):
    seen, url, pages = [], "/assets?limit=2", 0
    while url:
        resp = client.get(url)
        assert resp.status_code == 200
        body = resp.get_json()
        assert isinstance(body, list) and len(body) <= 2  # the body stays the bare array
        seen += [a["asset_id"] for a in body]
        url = _next_from_link(resp)
        pages += 1
    assert seen == ["pump-01", "pump-02", "pump-03"] and pages == 2
    assert "Link" not in client.get("/assets").headers  # one page holds them all


def test_history_pages_cover_the_range_once(client, store):
    since, until = "2026-02-10 01:00:00", "2026-02-10 01:00:24"
    url = f"/assets/pump-01/readings?since={since}&until={until}&limit=10"
    stamps, pages = [], []
    while url:
        resp = client.get(url)
        body = resp.get_json()
        assert body["next"] == _next_from_link(resp)  # body and header agree
        pages.append([r["timestamp"] for r in body["readings"]])
        url = body["next"]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert pages[0][0] > pages[1][-1]  # each page is older than the one before
    stamps = sorted(s for p in pages for s in p)
    expected = pd.date_range(since, until, freq="1s").strftime("%Y-%m-%dT%H:%M:%S.000Z").tolist()
    assert stamps == expected
    assert body["truncated"] is False and pages and body["next"] is None


@pytest.mark.parametrize("cursor", ["nonsense!", "eyJ4IjoxfQ", "WyJhc3NldHMiLCJwdW1wLTAxIl0"])
def test_foreign_cursors_are_a_400(client, cursor):
    resp = client.get(f"/assets/pump-01/readings?cursor={cursor}")
    assert resp.status_code == 400 and resp.get_json()["parameter"] == "cursor"


# -- ETag ------------------------------------------------------------------------------------
def test_history_etag_answers_304_until_data_changes(client, store):
    url = "/assets/pump-01/readings?limit=5"
    first = client.get(url)
    tag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b""
    frame = pd.DataFrame({"timestamp": ["2026-02-10 03:00:00"], "asset_id": "pump-01",
                          "temperature": 61.0, "vibration": 0.5, "pressure": 10.0})
    with open_store(store.path) as w:
        assert ingest_frame(w, frame, source="test").inserted == 1
    changed = client.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag


def test_export_etag_answers_304_until_data_changes(client, store):
    url = "/export.csv?since=2026-02-10 02:59:00&until=2026-02-10 03:00:00"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["ETag"].startswith('W/"')
    tag = first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": tag}).status_code == 304
    frame = pd.DataFrame({"timestamp": ["2026-02-10 03:00:00"], "asset_id": "pump-02",
                          "temperature": 61.0, "vibration": 0.5, "pressure": 10.0})
    with open_store(store.path) as w:
        assert ingest_frame(w, frame, source="test").inserted == 1
    changed = client.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and b"2026-02-10 03:00:00" in changed.data


# -- gzip ------------------------------------------------------------------------------------
def test_large_answers_are_gzipped_small_ones_are_not(client):
    url = "/export.csv?since=2026-02-10 00:00:00&until=2026-02-10 00:30:00"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.GzipFile(fileobj=io.BytesIO(packed.data)).read() == plain.data
    assert len(packed.data) < len(plain.data) / 3
    hist = client.get("/assets/pump-01/readings?limit=500", headers={"Accept-Encoding": "gzip"})
    assert hist.headers["Content-Encoding"] == "gzip"
    small = client.get("/data", headers={"Accept-Encoding": "gzip"})  # ~1 KB: not worth it
    assert "Content-Encoding" not in small.headers and small.get_json()


# -- Swagger UI ------------------------------------------------------------------------------
def test_docs_page_loads_only_local_files(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith("/docs/") for r in refs), refs
    for ref in refs:
        resp = client.get(ref)
        assert resp.status_code == 200 and len(resp.data) > 100, ref
    js = client.get("/docs/swagger-ui-bundle.js").get_data(as_text=True)
    assert "SwaggerUIBundle" in js
    init = client.get("/docs/init.js").get_data(as_text=True)
    assert '"/openapi.json"' in init
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "http" not in csp
    assert client.get("/docs/../app.py").status_code == 404
    assert client.get("/docs/index.j2").status_code == 404


def test_cli_fetch_json_and_get_data_give_the_same_rows(tmp_path, make_app, capsys, monkeypatch):
    """One shape per resource: `twin fetch --json` prints exactly what GET /data answers."""
    import json

    from twinlib.cli import main
    db = _mixed_precision_db(tmp_path)
    monkeypatch.setenv("TWIN_SETTINGS", str(tmp_path / "none.toml"))
    capsys.readouterr()
    assert main(["fetch", "--db", str(db), "--limit", "5", "--json"]) == 0
    cli_rows = json.loads(capsys.readouterr().out)
    api_rows = make_app(db).test_client().get("/data?limit=5").get_json()
    assert cli_rows == api_rows and len(api_rows) == 5
