"""The twinlib REST API: a Flask application factory and one blueprint per concern.

:func:`create_app` builds the app; ``twin api`` serves it with gunicorn on 127.0.0.1:5000, with
``worker.BufferedSyncWorker`` workers that slow clients cannot block. Reads go through a
per-thread read-only store (``stores``) checked against the file on every request, so a missing
database is a 503 and is never created, and a replaced one is never served stale; writes
(``POST /readings``, ``POST /alarms/<id>/ack``) need the
configured bearer token (``auth``) and go through :func:`twinlib.ingest.ingest_frame` or the
store. Parameters are parsed in ``params`` (400 naming the parameter), bodies are shaped in
``jsonio`` and serialised with orjson, every error is JSON (``errors``); ``openapi`` generates
the OpenAPI document served at ``/openapi.json`` from the routes and the views' ``@doc``
annotations (component schemas in ``schemas``), and ``/docs`` serves Swagger UI from the
``swagger-ui-bundle`` package. ``paging`` makes the cursors and ``next`` links of the lists,
``cors`` configures flask-cors, and every request is counted for ``/metrics``
(:mod:`twinlib.metrics`). ``fastpath`` answers the original parameterless
``GET /data`` below Flask (same bytes, ~40% less CPU per request). ``security`` adds the
security headers, ``limits`` refuses chunked bodies over the limit (413), and ``auth`` checks
the write token and, when one is configured, the read token, and limits wrong-token guesses
per client (429).

Endpoints: ``GET /data`` (the original contract), ``/assets``, ``/assets/<id>``,
``/assets/<id>/readings``, ``/assets/<id>/forecast``, ``/alarms``, ``/alarms/<id>``,
``POST /alarms/<id>/ack``, ``POST /readings``, ``/export.csv``, ``/health``, ``/metrics``,
``/openapi.json``, ``/docs``.
"""
from twinlib.api.app import create_app

__all__ = ["create_app"]
