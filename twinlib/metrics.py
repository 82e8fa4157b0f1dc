"""Prometheus metrics of the API and the monitor: every definition in this one module.

**API** (``GET /metrics`` on the API, see :func:`api_metrics`):

- ``twin_api_requests_total{endpoint,method,status}`` — requests answered;
- ``twin_api_request_duration_seconds{endpoint,method}`` — time from the request reaching the
  app to its answer starting (a streamed CSV export's transfer is not included).

``endpoint`` is the route's pattern (``/assets/<asset_id>``), never the raw path, so the label
set stays small; requests matching no route count as ``<unmatched>``. gunicorn runs several
worker processes: ``twin api`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before
any metric exists, each worker writes its values there, and a scrape — answered by whichever
worker — sums all of them (prometheus_client's multiprocess mode).

**Monitor** (its own port, ``[monitor] metrics_port`` / ``TWIN_MONITOR_METRICS_PORT``, bound to
127.0.0.1, off by default; see :func:`serve_monitor_metrics`):

- ``twin_monitor_readings_received_total``, ``…_inserted_total``, ``…_duplicates_total`` — the
  run's counters (ingest rate: ``rate(twin_monitor_readings_inserted_total[1m])``);
- ``twin_monitor_rejects_total{reason}`` — refused readings by validation code
  (``out_of_range``, ``non_numeric``, ``duplicate``, …; ``unparsed`` for what the source could
  not turn into a reading, and for a whole unusable batch);
- ``twin_monitor_ingest_lag_seconds`` — wall clock minus the newest stored reading's time;
- ``twin_monitor_detection_backlog_readings`` and ``twin_monitor_detection_lag_seconds`` — how
  many stored readings detection has not checked yet, and how far (in reading time) its cursor
  is behind the newest reading;
- ``twin_alarms{state,severity}`` — alarms in the store by state;
- ``twin_notify_outbox{channel,state}`` — notifications by channel and state (``pending`` is
  the outbox depth).

The monitor is one process, so its metrics live in its own registry. Only the monitor knows
what it received and refused, so it serves them itself; the store-derived gauges are read at
scrape time through a read-only store of their own (the scrape thread never touches the
monitor's connection).
"""
from __future__ import annotations

import logging
import os
import threading
import time

__all__ = ["api_metrics", "ApiMetricsMiddleware", "render_latest", "prepare_multiprocess",
           "MonitorCollector", "serve_monitor_metrics", "count_rejects", "ENDPOINT_KEY"]

log = logging.getLogger("twinlib.metrics")

#: WSGI environ key where the app (or the ``/data`` fast path) names the matched route.
ENDPOINT_KEY = "twinlib.endpoint"
_UNMATCHED = "<unmatched>"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0)

_lock = threading.Lock()
_api = None


def prepare_multiprocess(directory: str) -> None:
    """Switch prometheus_client to multiprocess mode writing into ``directory`` (emptied first).

    Call before the API's metrics exist (``twin api`` does, before building the app): values
    created afterwards are per-process files summed at scrape time.
    """
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import values
    # prometheus_client asks os.getpid() (a system call) on every increment to notice a fork;
    # the pid kept here is renewed in every forked child instead: the same values, 3 fewer
    # system calls per API request.
    values.ValueClass = values.MultiProcessValue(process_identifier=_pid)


_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _pid() -> int:
    """This process's id, known without a system call (renewed after every fork)."""
    return _PID[0]


def api_metrics():
    """The API's two metrics (created once per process)."""
    global _api
    with _lock:
        if _api is None:
            from prometheus_client import Counter, Histogram
            requests = Counter("twin_api_requests_total", "API requests answered",
                               ("endpoint", "method", "status"))
            latency = Histogram("twin_api_request_duration_seconds",
                                "API request handling time until the answer starts",
                                ("endpoint", "method"), buckets=_LATENCY_BUCKETS)
            _api = (requests, latency)
    return _api


def render_latest() -> tuple[bytes, str]:
    """The text exposition of this process's metrics, or of every worker's in multiprocess
    mode; returns ``(body, content type)``."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


class ApiMetricsMiddleware:
    """Outermost WSGI layer: counts and times every request, the fast path's included.

    The route pattern comes from the environ (:data:`ENDPOINT_KEY`), set by a Flask
    ``before_request`` hook or by the fast path; the status from ``start_response``.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.requests, self.latency = api_metrics()
        # (endpoint, method, status) -> the two labelled children: labels() takes a lock and
        # builds a key on every call; the set of routes × methods × statuses is small.
        self._children: dict[tuple, tuple] = {}

    def _record(self, endpoint: str, method: str, status: str, seconds: float) -> None:
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.latency.labels(endpoint, method),
                                               self.requests.labels(endpoint, method, status))
        children[0].observe(seconds)
        children[1].inc()

    def __call__(self, environ, start_response):
        t0 = time.perf_counter()
        status = ["500"]

        def _start(code, headers, exc_info=None):
            status[0] = code[:3]
            return start_response(code, headers, exc_info)

        try:
            return self.wsgi_app(environ, _start)
        finally:
            endpoint = environ.get(ENDPOINT_KEY) or _UNMATCHED
            method = environ.get("REQUEST_METHOD", "?")
            if method not in ("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"):
                method = "other"
            self._record(endpoint, method, status[0], time.perf_counter() - t0)


# -- monitor -----------------------------------------------------------------------------------
_rejects = None


def _rejects_counter(registry=None):
    global _rejects
    with _lock:
        if _rejects is None:
            from prometheus_client import CollectorRegistry, Counter
            _rejects = Counter("twin_monitor_rejects_total", "Readings refused, by reason",
                               ("reason",), registry=registry or CollectorRegistry())
    return _rejects


def count_rejects(rejects) -> None:
    """Count refused readings by their validation code (the monitor's one hook)."""
    if not rejects:
        return
    counter = _rejects_counter()
    for r in rejects:
        code = getattr(r, "code", "") or "unparsed"
        counter.labels(code).inc()


class MonitorCollector:
    """Collects the monitor's counters and the store's alarm and outbox figures at scrape time."""

    def __init__(self, monitor, db_location):
        self.monitor = monitor
        self.db_location = db_location

    def _store(self):
        from twinlib.store import open_store
        return open_store(self.db_location, create=False, readonly=True)

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        stats = self.monitor.stats
        for name, value, doc in (
                ("received", stats.received, "Readings the source handed over"),
                ("inserted", stats.inserted, "Readings newly stored"),
                ("duplicates", stats.duplicates, "Readings already stored")):
            yield CounterMetricFamily(f"twin_monitor_readings_{name}", doc, value=value)
        if _rejects is not None:
            yield from _rejects.collect()
        yield CounterMetricFamily("twin_monitor_detect_errors", "Detection passes that failed",
                                  value=stats.detect_errors)
        try:
            store = self._store()
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("metrics: store unavailable (%s)", exc)
            return
        try:
            now = time.time() * 1000
            newest = store.newest_ts()
            lag = GaugeMetricFamily("twin_monitor_ingest_lag_seconds",
                                    "Wall clock minus the newest stored reading's time")
            if newest is not None:
                lag.add_metric([], max(0.0, (now - newest) / 1000.0))
            yield lag
            max_id = store.max_id()
            cursor = int(store.get_meta("detect.cursor", "0") or 0)
            yield GaugeMetricFamily("twin_monitor_detection_backlog_readings",
                                    "Stored readings detection has not checked yet",
                                    value=max(0, max_id - cursor))
            behind = 0.0
            if max_id > cursor and newest is not None:
                nxt = store.after(cursor, limit=1)
                if nxt:
                    behind = max(0.0, (newest - nxt[0].ts) / 1000.0)
            yield GaugeMetricFamily("twin_monitor_detection_lag_seconds",
                                    "Reading time between detection's cursor and the newest "
                                    "reading (0 when caught up)", value=behind)
            alarms = GaugeMetricFamily("twin_alarms", "Alarms in the store by state and severity",
                                       labels=("state", "severity"))
            counts: dict[tuple, int] = {}
            for a in store.list_alerts(limit=None):
                key = (str(a.get("state")), str(a.get("severity")))
                counts[key] = counts.get(key, 0) + 1
            for key, n in sorted(counts.items()):
                alarms.add_metric(list(key), n)
            yield alarms
            outbox = GaugeMetricFamily("twin_notify_outbox",
                                       "Notifications by channel and state (pending = depth)",
                                       labels=("channel", "state"))
            for channel, one in sorted(store.outbox_summary().items()):
                for state in ("pending", "failed", "sent"):
                    outbox.add_metric([channel, state], one.get(state, 0))
            yield outbox
        except Exception as exc:
            log.warning("metrics: store read failed (%s)", exc)
        finally:
            store.close()


def serve_monitor_metrics(monitor, db_location, port: int, host: str = "127.0.0.1"):
    """Serve the monitor's metrics on ``host:port`` (a daemon thread); returns the server."""
    from prometheus_client import CollectorRegistry, start_http_server
    registry = CollectorRegistry()
    _rejects_counter()
    registry.register(MonitorCollector(monitor, db_location))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("monitor metrics on http://%s:%d/metrics", host, server.server_port)
    return server
