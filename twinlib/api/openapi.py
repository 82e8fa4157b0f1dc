"""The OpenAPI 3.0 document, generated from the app: routes, path parameters and methods come
from Flask's URL map, each operation's summary from its view's docstring, and what a route
declares with :func:`doc` (query parameters, answers, request body) sits on the view beside the
code that parses and answers it. apispec assembles and validates the document.

Why apispec and not flask-smorest or spectree: those wrap every request in their parsing and
serialisation layers; apispec only writes the document, once per app (docs/DESIGN.md, "API",
has the measurement). The parameter parsers stay :mod:`twinlib.api.params` (strict, no 500s).

Added to what a view declares: ``503`` on every route reading the database, ``400`` on routes
with query parameters, the cursor parameter on paged lists, and — when a read token is
configured — the read security schemes and ``401``/``429`` on every route it guards.
A route no one annotated (a new blueprint) is still documented: its path, methods, path
parameters and docstring summary, with a generic answer.

Operations written out whole elsewhere — ``twinlib.api.spec_alarms`` (``alarm_paths()``,
``alarm_schemas()``), when that module exists — are taken as they are for the routes they
name; the document still lists only routes the app serves.
"""
from __future__ import annotations

import copy
import re

from apispec import APISpec
from flask import Flask

from twinlib.api import schemas as S

__all__ = ["doc", "describe", "build_spec", "SPEC_VERSION"]

SPEC_VERSION = "1.1.0"

_PATH_SCHEMAS = {
    "int": {"type": "integer", "minimum": 0},
    "path": {"type": "string", "minLength": 1},
}
_DEFAULT_PATH = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/]+$"}


def _meta(tags, operation_id, params, responses, reads_db, paged, path_schemas, extra) -> dict:
    return {"tags": tags, "operationId": operation_id, "params": list(params or []),
            "responses": dict(responses or {}), "reads_db": reads_db, "paged": paged,
            "path_schemas": dict(path_schemas or {}), "extra": extra}


def doc(*, tags: list[str], operation_id: str, params: list | None = None,
        responses: dict | None = None, reads_db: bool = True, paged: bool = False,
        path_schemas: dict | None = None, **extra):
    """Attach an operation's OpenAPI description to a view (no cost per request)."""

    def wrap(view):
        view._openapi = _meta(tags, operation_id, params, responses, reads_db, paged,
                              path_schemas, extra)
        return view

    return wrap


def describe(endpoint: str, **kwargs) -> None:
    """:func:`doc` for a view defined elsewhere, by its Flask endpoint name (a view's own
    ``@doc`` wins)."""
    kw = dict(kwargs)
    _BY_ENDPOINT[endpoint] = _meta(kw.pop("tags"), kw.pop("operation_id"), kw.pop("params", None),
                                   kw.pop("responses", None), kw.pop("reads_db", True),
                                   kw.pop("paged", False), kw.pop("path_schemas", None), kw)


_BY_ENDPOINT: dict[str, dict] = {}


def _summary(view) -> tuple[str, str | None]:
    text = (view.__doc__ or "").strip()
    if not text:
        return view.__name__.replace("_", " "), None
    first, _, rest = text.partition("\n\n")
    return " ".join(first.split()), (" ".join(rest.split()) or None)


def _path_params(rule, schemas: dict) -> list[dict]:
    out = []
    for conv, name in re.findall(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", rule.rule):
        schema = schemas.get(name) or _PATH_SCHEMAS.get(conv or "", _DEFAULT_PATH)
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _operation(view, rule, method: str, read_auth: bool) -> dict:
    meta = getattr(view, "_openapi", None) or _BY_ENDPOINT.get(rule.endpoint)
    summary, description = _summary(view)
    write = getattr(view, "_twin_write", False)
    if meta is None:  # not annotated: what the code alone tells
        op = {"summary": summary, "operationId": f"{method}_{rule.endpoint}".replace(".", "_"),
              "tags": [rule.endpoint.split(".")[0]],
              "parameters": _path_params(rule, {}),
              "responses": {"200": {"description": "OK"}, "default": S.err("An error.")}}
        if write:
            op["security"] = [{"bearerAuth": []}]
    else:
        op = {"summary": summary, "operationId": meta["operationId"], "tags": meta["tags"]}
        if description:
            op["description"] = description
        params = _path_params(rule, meta["path_schemas"]) + list(meta["params"])
        if meta["paged"]:
            params.append(S.CURSOR)
        if params:
            op["parameters"] = params
        responses = dict(meta["responses"])
        if any(p["in"] == "query" for p in params) or "requestBody" in meta["extra"]:
            responses.setdefault("400", S.ERRORS["400"])
        if meta["reads_db"]:
            responses.setdefault("503", S.ERRORS["503"])
        if write:
            op["security"] = [{"bearerAuth": []}]
            for code, answer in S.AUTH.items():
                responses.setdefault(code, answer)
        op["responses"] = responses
        op.update(meta["extra"])
    _add_read_auth(op, rule, read_auth)
    return op


def _add_read_auth(op: dict, rule, read_auth: bool) -> None:
    from twinlib.api.auth import OPEN_ENDPOINTS
    if read_auth and "security" not in op and rule.rule not in OPEN_ENDPOINTS:
        op["security"] = [{"readBearer": []}, {"readBasic": []}, {"bearerAuth": []}]
        op.setdefault("responses", {}).setdefault("401", S.err("Missing or wrong read token."))
        op["responses"].setdefault("429", S.AUTH["429"])


def _written_out() -> tuple[dict, dict]:
    """(paths, schemas) of the operations documented whole in ``spec_alarms``, if present."""
    import importlib
    try:
        spec_alarms = importlib.import_module("twinlib.api.spec_alarms")
    except ImportError:
        return {}, {}
    return spec_alarms.alarm_paths(), spec_alarms.alarm_schemas()


def build_spec(app: Flask) -> dict:
    """The OpenAPI document of ``app`` (a fresh dict each call)."""
    read_auth = bool(app.config.get("API_READ_TOKEN"))
    written_paths, written_schemas = _written_out()
    spec = APISpec(
        title="twinlib API", version=SPEC_VERSION, openapi_version="3.0.3",
        info={"description": (
            "Readings, assets, alarms and forecasts of the twinlib digital twin. Times are ISO "
            "8601 UTC (`2026-02-10T14:30:00.000Z`) everywhere except `GET /data`, which keeps "
            "the original `YYYY-MM-DD HH:MM:SS` (UTC). Lists are paged by cursor: follow the "
            "`next` link (the `Link` header, and a `next` field in object bodies). Every error "
            "is JSON: `{status, error, message[, parameter]}`.")})
    for name, schema in {**S.SCHEMAS, **written_schemas}.items():
        spec.components.schema(name, schema)
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                   "description": "The write token."})
    if read_auth:
        spec.components.security_scheme("readBearer", {"type": "http", "scheme": "bearer",
                                                       "description": "The read token."})
        spec.components.security_scheme("readBasic", {
            "type": "http", "scheme": "basic",
            "description": "Any user name, the read token as password."})
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        if view is None or getattr(view, "_openapi_hidden", False) or rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            written = written_paths.get(path, {}).get(method.lower())
            if written is not None:
                op = copy.deepcopy(written)
                _add_read_auth(op, rule, read_auth)
            else:
                op = _operation(view, rule, method.lower(), read_auth)
            paths.setdefault(path, {})[method.lower()] = op
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


# The alarm views (twinlib/api/views/alarms.py) are described here, by endpoint, so that file
# stays its own; a ``@doc`` on one of them replaces the entry.
describe("alarms.list_alarms", tags=["alarms"], operation_id="listAlarms", params=[
    S.query("state", {"type": "string", "enum": ["active", "cleared"]}, "Only this state."),
    S.ASSET_Q,
    S.query("acked", {"type": "string", "enum": ["true", "false", "1", "0"]},
            "Only acknowledged (`true`) or unacknowledged (`false`) alarms."),
    S.query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "How many alarms (1–1000)."),
], responses={"200": S.json_body({"type": "array", "items": S.ref("Alarm")}, "The alarms."),
              **S.ASSET_404})
describe("alarms.get_alarm", tags=["alarms"], operation_id="getAlarm",
         path_schemas={"alarm_id": {"type": "integer", "minimum": 0}},
         responses={"200": S.json_body(S.ref("Alarm"), "The alarm."),
                    "404": S.err("Unknown alarm.")})
describe("alarms.acknowledge_alarm", tags=["alarms"], operation_id="acknowledgeAlarm",
         path_schemas={"alarm_id": {"type": "integer", "minimum": 0}},
         requestBody={"required": False, "content": {"application/json": {"schema": {
             "type": "object",
             "properties": {"by": {"type": "string", "minLength": 1, "maxLength": 100,
                                   "description": "Who acknowledges (default `api`)."}}}}}},
         responses={"200": S.json_body(S.ref("Alarm"), "The acknowledged alarm."),
                    "404": S.err("Unknown alarm.")})
