"""``GET /openapi.json``: the API's OpenAPI description."""
from __future__ import annotations

import functools

import orjson
from flask import Blueprint, Response

from twinlib.api.spec import build_spec

__all__ = ["bp"]

bp = Blueprint("spec", __name__)


@functools.lru_cache(maxsize=1)
def _spec_bytes() -> bytes:
    return orjson.dumps(build_spec())


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.0 document."""
    return Response(_spec_bytes(), mimetype="application/json")
