"""``GET /openapi.json`` (the document generated from the app) and ``GET /docs`` (Swagger UI).

Swagger UI's files come from the ``swagger-ui-bundle`` package installed beside twinlib, served
by this app: the page loads nothing from the internet (plant networks are often offline). The
page's own start-up script is a file too, so the page's CSP needs no inline script.
"""
from __future__ import annotations

import orjson
from flask import Blueprint, Response, abort, current_app, send_from_directory

from twinlib.api import schemas as S
from twinlib.api.openapi import build_spec, doc

__all__ = ["bp", "swagger_ui_dir"]

bp = Blueprint("spec", __name__)

#: Only these files of the bundle are served (no directory listing, nothing else).
_UI_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                       "favicon-32x32.png", "favicon-16x16.png", "index.css"})
_DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
             "frame-ancestors 'none'")

_INDEX = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>twinlib API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
_INIT = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
};
"""


def swagger_ui_dir() -> str:
    """The folder of Swagger UI's static files (the ``swagger-ui-bundle`` package)."""
    from swagger_ui_bundle import swagger_ui_path
    return swagger_ui_path


def _spec_bytes() -> bytes:
    cached = current_app.extensions.get("twinlib.openapi")
    if cached is None:  # built once per app: the routes do not change while it runs
        cached = current_app.extensions["twinlib.openapi"] = orjson.dumps(build_spec(current_app))
    return cached


@bp.get("/openapi.json")
@doc(tags=["service"], operation_id="openapi", reads_db=False,
     responses={"200": S.json_body({"type": "object"}, "The OpenAPI description.")})
def openapi():
    """This document (OpenAPI 3.0, generated from the app's routes)."""
    return Response(_spec_bytes(), mimetype="application/json")


def _page(body: bytes, mimetype: str) -> Response:
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Security-Policy"] = _DOCS_CSP
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/docs")
@doc(tags=["service"], operation_id="docs", reads_db=False,
     responses={"200": {"description": "Swagger UI (HTML).",
                        "content": {"text/html": {"schema": {"type": "string"}}}}})
def docs():
    """Swagger UI for this API, served from an installed package (works offline)."""
    return _page(_INDEX, "text/html")


@bp.get("/docs/<path:filename>")
def docs_file(filename: str):
    """A static file of Swagger UI."""
    if filename == "init.js":
        return _page(_INIT, "text/javascript")
    if filename not in _UI_FILES:
        abort(404)
    resp = send_from_directory(swagger_ui_dir(), filename, max_age=3600)
    resp.headers["Content-Security-Policy"] = _DOCS_CSP
    return resp


docs_file._openapi_hidden = True
