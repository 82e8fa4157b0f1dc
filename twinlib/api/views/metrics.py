"""``GET /metrics``: the API's Prometheus metrics (text exposition format).

Request counts and latency by route, method and status (:mod:`twinlib.metrics`); with
several gunicorn workers, every worker's values summed. Needs the read token when one is set.
"""
from __future__ import annotations

from flask import Blueprint, Response

from twinlib.api.openapi import doc
from twinlib.metrics import render_latest

__all__ = ["bp"]

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@doc(tags=["service"], operation_id="metrics", reads_db=False,
     responses={"200": {"description": "Prometheus text exposition format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics():
    """Prometheus metrics: requests and latency by endpoint, method and status."""
    body, content_type = render_latest()
    return Response(body, content_type=content_type)
