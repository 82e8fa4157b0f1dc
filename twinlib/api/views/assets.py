"""Assets: the fleet with each asset's latest reading and status, one asset's reading history
(raw or downsampled to 1-minute, 5-minute or 1-hour buckets) and its forecast."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, request

from twinlib.api import schemas as S
from twinlib.api.errors import ApiError
from twinlib.api.jsonio import clean_number, format_optional_ts, json_response, plain_text
from twinlib.api.openapi import doc
from twinlib.api.paging import get_cursor, link_header, next_url
from twinlib.api.params import BUCKETS, get_bucket, get_int, get_range
from twinlib.api.stores import read_store
from twinlib.config import SettingsError
from twinlib.detect import asset_status
from twinlib.kinds import Kind, described_kind
from twinlib.store import Reading, Store
from twinlib.timeutil import format_iso, now_ms

__all__ = ["bp", "MAX_BUCKETS", "MAX_HISTORY_LIMIT", "DEFAULT_BUCKET_SPAN_MS", "MAX_ASSETS_PAGE",
           "conditional_json"]

_LOCATION_PART = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KIND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

bp = Blueprint("assets", __name__)

#: A downsampled history never has more buckets than this (a chart has no more pixels).
MAX_BUCKETS = 10_000
#: Raw history returns at most this many readings per request.
MAX_HISTORY_LIMIT = 10_000
#: ``GET /assets`` answers at most this many assets per page (``next`` links to the rest).
MAX_ASSETS_PAGE = 1000
#: Without ``since``, a downsampled history covers the 24 h before ``until``.
DEFAULT_BUCKET_SPAN_MS = 24 * 3600 * 1000


def _kind(asset_id: str, meta: dict) -> Kind:
    """The asset's kind (the settings file's word first, then the store's). A kind no catalogue
    defines (any more) is described from what the store holds: its signals, units unknown."""
    settings = current_app.extensions["twinlib.settings"]
    try:
        return settings.kind_for(asset_id, meta.get("kind"))
    except SettingsError:
        return described_kind(meta.get("kind"), meta.get("signals"))


def _reading(r: Reading | None, kind: Kind | None = None) -> dict | None:
    """A reading on the wire: id, timestamp, the kind's measured signals by name, label."""
    if r is None:
        return None
    out = {"id": r.id, "timestamp": format_iso(r.ts)}
    names = kind.measured if kind is not None else tuple(r.values)
    for name in names:
        out[name] = r.values.get(name)
    out["label"] = r.label
    return out


def _signals(kind: Kind, limits: dict | None = None) -> list[dict]:
    """The kind's signals; with ``limits`` (:func:`twinlib.detect.limits.limits_json`), each one's
    ``limits_in_force`` (``{"high": …, "low": …}``, null sides: no level; state signals: both)."""
    out = [{"name": s.name, "unit": s.unit, "role": s.role} for s in kind.signals]
    if limits is not None:
        for item in out:
            item["limits_in_force"] = limits.get(item["name"]) or {"high": None, "low": None}
    return out


def _limits(store: Store, asset_id: str, meta: dict) -> dict:
    """The limits the alarm engine applies to the asset (the dashboard's call too)."""
    from twinlib.detect.limits import limits_in_force, limits_json

    settings = current_app.extensions["twinlib.settings"]
    return limits_json(limits_in_force(store, asset_id, settings=settings,
                                       stored_kind=meta.get("kind")))


def _statuses(store: Store) -> dict[str, dict]:
    """Live status per asset: active alarms, and staleness measured against the wall clock."""
    settings = current_app.extensions["twinlib.settings"]
    return asset_status(store, now_ms=now_ms(), rules=settings.file)


def _asset_body(asset_id: str, meta: dict, latest: Reading | None, status,
                limits: dict | None = None) -> dict:
    settings = current_app.extensions["twinlib.settings"]
    kind = _kind(asset_id, meta)
    return {
        "asset_id": asset_id,
        "kind": kind.name,
        "location": settings.location_for(asset_id, meta.get("location")),
        "params": meta.get("params", {}),
        "signals": _signals(kind, limits),
        "status": status,
        "latest": _reading(latest, kind),
    }


def _require_asset(store: Store, asset_id: str) -> None:
    if not store.has_asset(asset_id):
        raise ApiError(404, f"unknown asset {asset_id!r}", parameter="asset_id")


@bp.get("/assets")
@doc(tags=["assets"], operation_id="listAssets", paged=True, params=[
    S.query("location", {"type": "string", "minLength": 1, "maxLength": 600,
                         "pattern": r"^/?[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}/?$"},
            "Only assets at this location path or below it."),
    S.query("kind", {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
            "Only assets of this kind."),
    S.query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ASSETS_PAGE,
                      "default": MAX_ASSETS_PAGE}, "Assets per page."),
], responses={"200": {**S.json_body({"type": "array", "items": S.ref("Asset")},
                                    "The fleet, by asset id (one page)."),
                      "headers": {"Link": {"description": "`<url>; rel=\"next\"` when there "
                                                          "is a further page.",
                                           "schema": {"type": "string"}}}}})
def list_assets():
    """Every asset with its latest reading and status.

    ``location=plant-1/line-2`` keeps the
    assets at that location or below it, ``kind=pump`` those of one kind. Paged by asset id:
    ``limit`` per page, the next page's address in the ``Link`` header (the body stays the
    array it always was)."""
    location = get_location()
    limit = get_int("limit", MAX_ASSETS_PAGE, 1, MAX_ASSETS_PAGE)
    after = get_cursor("assets")
    if after is not None and not isinstance(after, str):
        raise ApiError(400, "cursor is not a cursor this list handed out", parameter="cursor")
    kind_name = request.args.get("kind")
    if kind_name is not None and not _KIND_NAME.fullmatch(kind_name):
        raise ApiError(400, "kind must be a kind name (letters, digits, _ . - ; at most 64)",
                       parameter="kind")
    store = read_store()
    meta = {a["asset_id"]: a for a in store.assets(counts=False)}
    statuses = _statuses(store)
    out = []
    more = False
    for asset_id in sorted(set(store.asset_ids()) | set(statuses)):
        if after is not None and asset_id <= after:
            continue
        rows = store.latest(1, asset=asset_id)
        body = _asset_body(asset_id, meta.get(asset_id, {}), rows[0] if rows else None,
                           _status_of(statuses, asset_id))
        if location is not None and not _under(body["location"], location):
            continue
        if kind_name is not None and body["kind"] != kind_name:
            continue
        if len(out) == limit:
            more = True
            break
        out.append(body)
    nxt = next_url("assets", out[-1]["asset_id"]) if more else None
    return json_response(out, headers=link_header(nxt))


def get_location() -> str | None:
    """``location``: a path of 1–8 levels of letters, digits, ``_ . -``, joined by ``/``."""
    value = request.args.get("location")
    if value is None:
        return None
    value = value.strip("/")
    parts = value.split("/")
    if not value or len(parts) > 8 or not all(_LOCATION_PART.fullmatch(p) for p in parts):
        raise ApiError(400, "location must be a path like plant-1/line-2 (letters, digits, "
                            "_ . - ; at most 8 levels)", parameter="location")
    return value


def _under(location: str | None, prefix: str) -> bool:
    if not location:
        return False
    location = location.strip("/")
    return location == prefix or location.startswith(prefix + "/")


@bp.get("/assets/<asset_id>")
@doc(tags=["assets"], operation_id="getAsset",
     responses={"200": S.json_body(S.ref("Asset"), "The asset."), "404": S.err("Unknown asset.")})
def get_asset(asset_id: str):
    """One asset with its latest reading and status.

    Each signal also says the alarm limits in force for this asset (``limits_in_force``: high
    and low side, warning/critical/deadband, and where they come from — the kind, the settings'
    override, or learned from the asset's first hours, with the learning window)."""
    store = read_store()
    _require_asset(store, asset_id)
    rows = store.latest(1, asset=asset_id)
    meta = store.asset(asset_id) or {}
    return json_response(_asset_body(asset_id, meta, rows[0] if rows else None,
                                     _status_of(_statuses(store), asset_id),
                                     _limits(store, asset_id, meta)))


def _status_of(statuses: dict, asset_id: str) -> dict:
    # asset_status covers every asset with metadata, readings or alarms, like asset_ids().
    status = statuses[asset_id]
    return {"status": status["status"], "messages": [plain_text(m) for m in status["messages"]]}


@bp.get("/assets/<asset_id>/readings")
@doc(tags=["assets"], operation_id="getHistory", paged=True, params=[
    S.query("bucket", {"type": "string", "enum": list(BUCKETS)},
            "Downsample to 1-minute, 5-minute or 1-hour buckets."),
    S.query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_LIMIT,
                      "default": 1000}, "Raw history: readings per page (1–10000)."),
    S.SINCE, S.UNTIL,
], responses={"200": {**S.json_body(S.ref("History"), "The history (one page)."),
                      "headers": {"ETag": {"schema": {"type": "string"}},
                                  "Link": {"schema": {"type": "string"}}}},
              "304": {"description": "Not modified (`If-None-Match` matched the `ETag`)."},
              **S.ASSET_404})
def get_history(asset_id: str):
    """Reading history, raw or downsampled (min/mean/max per bucket).

    Raw readings (oldest first), or min/mean/max per time bucket.

    Raw history is paged backwards in time: a page is the newest ``limit`` readings up to
    ``until``; ``next`` (body and ``Link`` header) is the page of readings just before it.
    The answer carries an ``ETag``; ``If-None-Match`` with it answers 304 while nothing changed.
    """
    limit = get_int("limit", 1000, 1, MAX_HISTORY_LIMIT)
    bucket_s = get_bucket()
    since, until = get_range()
    before = get_cursor("history")
    if before is not None:
        if bucket_s is not None or not isinstance(before, int) or isinstance(before, bool):
            raise ApiError(400, "cursor is not a cursor this list handed out", parameter="cursor")
        until = before if until is None else min(until, before)
        if since is not None and until < since:
            until = since - 1  # past the range: an empty last page
    store = read_store()
    _require_asset(store, asset_id)
    kind = _kind(asset_id, store.asset(asset_id) or {})
    if bucket_s is None:
        rows = [] if since is not None and until is not None and until < since else \
            store.latest(limit + 1, asset=asset_id, since=since, until=until)
        more = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        nxt = next_url("history", rows[0].ts - 1) if more else None
        return conditional_json({
            "asset_id": asset_id, "bucket": None,
            "since": format_optional_ts(since), "until": format_optional_ts(until),
            "truncated": more,
            "readings": [_reading(r, kind) for r in rows],
            "next": nxt,
        }, headers=link_header(nxt))
    bucket_name = next(k for k, v in BUCKETS.items() if v == bucket_s)
    if until is None:
        until = store.newest_ts(asset_id)
    if since is None and until is not None:
        since = until - DEFAULT_BUCKET_SPAN_MS
    if since is not None and until is not None and (until - since) // (bucket_s * 1000) >= MAX_BUCKETS:
        raise ApiError(400, f"range too long for bucket={bucket_name}: at most {MAX_BUCKETS} "
                            "buckets; narrow since/until or use a larger bucket", parameter="since")
    buckets = []
    if until is not None:
        df = store.downsample(bucket_s, start=since, end=until, asset=asset_id,
                              signals=list(kind.measured))
        cols = {c: df[c].tolist() for c in df.columns}
        for i, start in enumerate(cols["bucket"]):
            item = {"timestamp": format_iso(start), "n": int(cols["n"][i])}
            for s in kind.measured:
                item[s] = {a: clean_number(cols[f"{s}_{a}"][i]) for a in ("min", "mean", "max")}
            buckets.append(item)
    return conditional_json({
        "asset_id": asset_id, "bucket": bucket_name,
        "since": format_optional_ts(since), "until": format_optional_ts(until),
        "buckets": buckets,
        "next": None,  # one page: the bucket count is bounded by MAX_BUCKETS
    })


def conditional_json(obj, headers: dict | None = None):
    """A JSON answer with a strong ``ETag`` (a hash of its bytes): ``If-None-Match`` with the
    same tag gets an empty 304. ``Cache-Control: private, no-cache`` lets the client keep a copy
    and revalidate it each time (shared caches still keep nothing)."""
    resp = json_response(obj, headers=headers)
    resp.headers["Cache-Control"] = "private, no-cache"
    resp.add_etag()
    return resp.make_conditional(request)


@bp.get("/assets/<asset_id>/forecast")
@doc(tags=["assets"], operation_id="getForecast",
     responses={"200": S.json_body(S.ref("Forecasts"), "The forecasts."),
                "404": S.err("Unknown asset.")})
def get_forecast(asset_id: str):
    """Time-to-threshold forecasts for the sensors trending toward a threshold."""
    store = read_store()
    _require_asset(store, asset_id)
    # Imported here: the models wing pulls in numerical code the hot path never needs.
    from twinlib.models.forecast import forecast_asset

    settings = current_app.extensions["twinlib.settings"]
    as_of = store.newest_ts(asset_id)
    items = [] if as_of is None else forecast_asset(
        store, asset_id, now_ms=as_of, thresholds=settings.thresholds(asset_id))
    return json_response({
        "asset_id": asset_id,
        "as_of": format_optional_ts(as_of),
        "forecasts": [_forecast_item(f) for f in items],
    })


def _forecast_item(f: dict) -> dict:
    return {
        "sensor": f["sensor"],
        "threshold": clean_number(f["threshold"]),
        "current": clean_number(f["current"]),
        "slope_per_hour": clean_number(f["slope_per_hour"]),
        "eta": format_optional_ts(f.get("eta")),
        "eta_low": format_optional_ts(f.get("eta_low")),
        "eta_high": format_optional_ts(f.get("eta_high")),
        "hours_to_threshold": clean_number(f["hours_to_threshold"]),
        "eta_expected": format_optional_ts(f.get("eta_expected")),
        "expected_hours_to_threshold": clean_number(f.get("expected_hours_to_threshold")),
        "curve_hours_to_threshold": clean_number(f.get("curve_hours_to_threshold")),
        "coverage": clean_number(f.get("coverage")),
    }


@bp.get("/kinds")
@doc(tags=["assets"], operation_id="listKinds", reads_db=False,
     responses={"200": S.json_body({"type": "array", "items": S.ref("Kind")}, "The kinds.")})
def list_kinds():
    """Every asset kind: its signals with units, roles, valid ranges and alarm limits."""
    settings = current_app.extensions["twinlib.settings"]
    return json_response([k.as_dict() for k in settings.kinds.values()])


@bp.get("/kinds/<name>")
@doc(tags=["assets"], operation_id="getKind", reads_db=False,
     path_schemas={"name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}},
     responses={"200": S.json_body(S.ref("Kind"), "The kind."), "404": S.err("Unknown kind.")})
def get_kind(name: str):
    """One asset kind."""
    settings = current_app.extensions["twinlib.settings"]
    if name not in settings.kinds:
        raise ApiError(404, f"unknown kind {name!r}", parameter="name")
    return json_response(settings.kinds[name].as_dict())
