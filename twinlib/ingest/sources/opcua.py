"""Readings from an OPC UA server (asyncua): nodes mapped to an asset's signals.

The mapping (``[opcua]`` of the plant mapping, :mod:`twinlib.ingest.mapping`) names, per asset,
the node of each signal by NodeId or browse path. On connecting, every node is resolved and
read once: a node the server does not know, or one that does not hold a number, stops the
start with a message naming the mapping entry.

``mode = "subscribe"`` (the default) creates one subscription with a data-change monitored item
per node; each notification carries the server's **source timestamp**, which becomes the
reading's time (the server timestamp when a server gives no source timestamp, the receive time
when it gives neither). If the server refuses subscriptions the source falls back to polling;
``mode = "poll"`` polls from the start (one batched Read of every node per
``poll_interval_s``).

A lost connection (the server stops, the network drops) is noticed at once when the socket
closes, else by a read of the server's state that gets no answer within ``timeout_s``; the source
reconnects with back-off (0.5 s doubling to 30 s) and subscribes
again. Nothing is doubled: a value redelivered after a reconnect (the initial notification of
a new subscription repeats the current value) has the same source timestamp, and the store
keeps one reading per asset and instant. Nothing is lost that the server kept: on every
(re)connect the source asks the server's history (HistoryRead, raw) for each node since the
newest reading it has, and stores what changed while it was away; a server without history
says so once in the log, and changes it made while nobody listened are then gone.
"""
from __future__ import annotations

import logging
import math
import os
from datetime import datetime, timedelta, timezone
from typing import Callable

from twinlib.ingest.mapping import MappingError, OpcuaMapping, OpcuaPoint
from twinlib.ingest.sources._plant import Backoff, PlantSource
from twinlib.timeutil import format_ts, now_ms

__all__ = ["OpcuaSource", "browse", "dt_ms"]

log = logging.getLogger("twinlib.monitor")
logging.getLogger("asyncua").setLevel(logging.WARNING)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def dt_ms(value) -> int | None:
    """An OPC UA DateTime (datetime, naive = UTC) as epoch ms; None if absent."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    ms = int((value - _EPOCH) / timedelta(milliseconds=1))
    return ms if ms > 0 else None  # the OPC UA "null" time (1601) counts as absent


def _number(variant_value) -> float | None:
    v = variant_value
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return None


class _Handler:
    """asyncua subscription handler: data changes go straight into the source's buffer."""

    def __init__(self, source: "OpcuaSource"):
        self.source = source

    def datachange_notification(self, node, val, data) -> None:
        self.source._on_value(node.nodeid, data.monitored_item.Value)

    def status_change_notification(self, status) -> None:
        log.warning("opcua: subscription status changed: %s", status)


class OpcuaSource(PlantSource):
    """Values of the mapped nodes of an OPC UA server (module docstring)."""

    name = "opcua"

    def __init__(self, mapping: OpcuaMapping, *, password: str | None = None,
                 settle_s: float = 1.0, backfill_max_s: float = 3600.0,
                 probe_s: float = 1.0, clock: Callable[[], int] = now_ms):
        super().__init__(mapping.kinds, settle_s=settle_s, clock=clock)
        self.mapping = mapping
        self.password = password if password is not None else os.environ.get(
            "TWIN_OPCUA_PASSWORD")
        self.backfill_max_s = float(backfill_max_s)
        self.probe_s = float(probe_s)
        self._by_nodeid: dict = {}          # NodeId → OpcuaPoint
        self._newest: dict[str, int] = {}   # asset → newest reading time seen or stored
        self.mode = mapping.mode
        self.history = None                 # True/False once the server answered a HistoryRead

    def _expected(self, asset: str) -> int:
        return sum(1 for p in self.mapping.points if p.asset == asset)

    def open(self, store, **kw) -> None:
        for asset in self.asset_kinds:
            try:
                newest = store.newest_ts(asset) if store.has_asset(asset) else None
            except Exception:  # noqa: BLE001 - a store without the asset yet
                newest = None
            if newest is not None:
                self._newest[asset] = int(newest)
        kw.setdefault("start_timeout", self.mapping.timeout_s * 2 + 5)
        super().open(store, **kw)

    # -- values ----------------------------------------------------------------------------------
    def _on_value(self, nodeid, dv) -> None:
        point = self._by_nodeid.get(nodeid)
        if point is None:
            return
        self._accept(point, dv)

    def _accept(self, point: OpcuaPoint, dv, into: list | None = None) -> None:
        """One DataValue of a point: into the buffer (or appended to ``into``), or a reject."""
        status = dv.StatusCode
        if status is not None and not status.is_good():
            if "WaitingForInitialData" in status.name:
                return  # the server has no value yet: not a reading

            self.reject(f"{point.where}: {point.address} reported status {status.name}; "
                        f"value not stored")
            return
        value = _number(dv.Value.Value if dv.Value is not None else None)
        if value is None or not math.isfinite(value):
            self.reject(f"{point.where}: {point.address} sent {dv.Value.Value!r}, not a "
                        f"finite number")
            return
        ts = dt_ms(dv.SourceTimestamp) or dt_ms(dv.ServerTimestamp) or self.clock()
        prev = self._newest.get(point.asset)
        if prev is None or ts > prev:
            self._newest[point.asset] = ts
        value = value * point.scale + point.offset
        if into is None:
            self.put(point.asset, ts, point.signal, value)
        else:
            into.append((point.asset, ts, point.signal, value))

    # -- the connection --------------------------------------------------------------------------
    async def _connect(self):
        from asyncua import Client

        m = self.mapping
        # the liveness probe (a read of the server state) gets the request timeout: on a busy
        # machine a 1 s probe declares healthy connections dead and reconnects for nothing
        client = Client(m.endpoint, timeout=m.timeout_s,
                        watchdog_intervall=max(self.probe_s, m.timeout_s))
        if m.security:
            await client.set_security_string(m.security)
        if m.username:
            client.set_user(m.username)
            client.set_password(self.password or "")
        await client.connect()
        return client

    async def _resolve(self, client) -> list:
        """Every mapped node, checked: it exists and holds a number (MappingError if not)."""
        from asyncua import ua

        nodes = []
        for p in self.mapping.points:
            if p.node is not None:
                try:
                    node = client.get_node(p.node)
                except Exception as exc:  # noqa: BLE001 - a malformed NodeId
                    raise MappingError(f"{p.where}: {p.node!r} is not a valid NodeId ({exc})") from exc
            else:
                try:
                    node = await client.nodes.objects.get_child(p.path.split("/"))
                except ua.UaStatusCodeError as exc:
                    raise MappingError(f"{p.where}: browse path {p.path!r} not found on the "
                                       f"server ({type(exc).__name__}); list the address space "
                                       f"with `twin opcua browse {self.mapping.endpoint}`") \
                        from None
            nodes.append(node)
        values = await self._read(client, nodes)
        for p, node, dv in zip(self.mapping.points, nodes, values):
            name = dv.StatusCode.name
            if "NodeId" in name or "AttributeId" in name or "NotReadable" in name \
                    or "UserAccessDenied" in name:
                what = "unknown node" if "NodeIdUnknown" in name or "NodeIdInvalid" in name \
                    else "node refused"
                raise MappingError(f"{p.where}: {what} {p.address} on {self.mapping.endpoint} "
                                   f"({name}); list the address space with "
                                   f"`twin opcua browse {self.mapping.endpoint}`")
            if dv.StatusCode.is_good() and _number(dv.Value.Value) is None:
                raise MappingError(f"{p.where}: node {p.address} holds "
                                   f"{type(dv.Value.Value).__name__} {dv.Value.Value!r}, not a "
                                   f"number")
        self._by_nodeid = {node.nodeid: p for p, node in zip(self.mapping.points, nodes)}
        return nodes

    @staticmethod
    async def _read(client, nodes) -> list:
        from asyncua import ua

        params = ua.ReadParameters()
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        for node in nodes:
            rv = ua.ReadValueId()
            rv.NodeId = node.nodeid
            rv.AttributeId = ua.AttributeIds.Value
            params.NodesToRead.append(rv)
        return await client.uaclient.read(params)

    async def _backfill(self, nodes) -> None:
        """Ask the server's history for what changed since the newest reading (module doc)."""
        if self.history is False or self.backfill_max_s <= 0:
            return
        end = datetime.now(timezone.utc)
        floor = end - timedelta(seconds=self.backfill_max_s)
        got: list = []   # all of it, then into the buffer at once: an instant's values together
        since = dict(self._newest)   # _accept moves _newest on
        for p, node in zip(self.mapping.points, nodes):
            newest = since.get(p.asset)
            if newest is None:
                continue
            start = max(floor, _EPOCH + timedelta(milliseconds=newest + 1))
            try:
                history = await node.read_raw_history(start, end, return_bounds=False)
            except Exception as exc:  # noqa: BLE001 - servers without history say so in many ways
                if self.history is None:
                    log.info("opcua: the server keeps no history for %s (%s): values changed "
                             "while the monitor was away cannot be recovered", p.address,
                             type(exc).__name__)
                self.history = False
                return
            self.history = True
            for dv in history:
                self._accept(p, dv, got)
        if got:
            self.put_many(got)
            log.info("opcua: %d value(s) recovered from the server's history", len(got))

    async def _subscribe(self, client, nodes):
        from asyncua import ua

        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = self.mapping.publishing_interval_ms
        # keep-alives every ~5 s: asyncua's client recreates a subscription it has not heard from
        # for 1.5 keep-alive periods, and notifications sent meanwhile are dropped; with 1 s
        # keep-alives a busy machine triggered that (values lost in the benchmark)
        keepalive = max(10, math.ceil(5000 / self.mapping.publishing_interval_ms))
        params.RequestedLifetimeCount = max(10_000, 3 * keepalive)
        params.RequestedMaxKeepAliveCount = keepalive
        params.MaxNotificationsPerPublish = 0
        params.PublishingEnabled = True
        params.Priority = 0
        sub = await client.create_subscription(params, _Handler(self))
        # every write counts, even of an unchanged value (a new source timestamp is a new
        # reading); the queue keeps all values written within one publishing interval
        mfilter = ua.DataChangeFilter()
        mfilter.Trigger = ua.DataChangeTrigger.StatusValueTimestamp
        handles = await sub._subscribe(nodes, ua.AttributeIds.Value, mfilter, queuesize=100,
                                       sampling_interval=0)
        for p, h in zip(self.mapping.points, handles):
            if isinstance(h, ua.StatusCode):
                raise MappingError(f"{p.where}: the server refused to monitor {p.address} "
                                   f"({h.name})")
        return sub

    async def _session(self, client, nodes, lost) -> None:
        """Produce values until the connection is lost or the source closes."""
        if self.mode == "subscribe":
            try:
                await self._subscribe(client, nodes)
            except Exception as exc:  # noqa: BLE001 - e.g. BadServiceUnsupported
                log.warning("opcua: subscriptions refused (%s); polling every %.3g s instead",
                            exc, self.mapping.poll_interval_s)
                self.mode = "poll"
        self.connected.set()
        while not self.stopping and not lost.is_set():
            if self.mode == "poll":
                got: list = []
                for p, dv in zip(self.mapping.points, await self._read(client, nodes)):
                    self._accept(p, dv, got)
                self.put_many(got)
                await self.sleep(self.mapping.poll_interval_s)
            else:
                await self.sleep(0.2)

    async def _run(self) -> None:
        import asyncio

        backoff = Backoff()
        first, was_connected = True, False
        while not self.stopping:
            client = None
            lost = asyncio.Event()
            try:
                client = await self._connect()

                async def _lost(exc, _lost=lost):
                    _lost.set()
                client.connection_lost_callback = _lost
                nodes = await self._resolve(client)
                await self._backfill(nodes)
                if not was_connected:
                    log.info("opcua: connected to %s, %d node(s), %s", self.mapping.endpoint,
                             len(nodes), self.mode)
                else:
                    self.reconnects += 1
                    log.info("opcua: reconnected to %s", self.mapping.endpoint)
                was_connected = True
                self.started()
                backoff.reset()
                await self._session(client, nodes, lost)
                if not self.stopping:
                    self.last_error = "connection lost"
                    log.warning("opcua: connection to %s lost; reconnecting",
                                self.mapping.endpoint)
            except MappingError as exc:
                if first:
                    self.started(exc)
                    return
                log.error("opcua: %s; retrying", exc)  # the server changed under us
                self.last_error = str(exc)
            except Exception as exc:  # noqa: BLE001 - network errors of every sort
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("opcua: cannot reach %s (%s); retrying", self.mapping.endpoint,
                            self.last_error)
                self.started()
            finally:
                self.connected.clear()
                if client is not None:
                    try:
                        await asyncio.wait_for(client.disconnect(), 2.0)
                    except Exception:  # noqa: BLE001 - the server is gone already
                        pass
            if self.stopping:
                break
            first = False
            await self.sleep(backoff.next())

    def describe(self) -> dict:
        return {"source": self.name, "endpoint": self.mapping.endpoint, "mode": self.mode,
                "nodes": len(self.mapping.points), "connected": self.connected.is_set(),
                "values": self.values_received, "reconnects": self.reconnects,
                "history": self.history, "last_error": self.last_error,
                "newest": {a: format_ts(t) for a, t in sorted(self._newest.items())}}


# -- browsing ---------------------------------------------------------------------------------
async def _browse(url: str, depth: int, security: str, username: str | None,
                  password: str | None, timeout: float, all_ns0: bool = False) -> list[dict]:
    from asyncua import Client, ua

    client = Client(url, timeout=timeout)
    if security:
        await client.set_security_string(security)
    if username:
        client.set_user(username)
        client.set_password(password or "")
    await client.connect()
    out: list[dict] = []
    try:
        async def walk(node, path: list[str], level: int):
            for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                bn = await child.read_browse_name()
                name = f"{bn.NamespaceIndex}:{bn.Name}"
                if level == 0 and bn.NamespaceIndex == 0 and not all_ns0:
                    continue  # the standard's own objects (Server diagnostics, Aliases, …)
                cls = await child.read_node_class()
                entry = {"path": "/".join(path + [name]), "node": child.nodeid.to_string(),
                         "class": cls.name}
                if cls == ua.NodeClass.Variable:
                    try:
                        dv = await child.read_data_value(raise_on_bad_status=False)
                        entry["value"] = dv.Value.Value if _number(dv.Value.Value) is not None \
                            else repr(dv.Value.Value)[:60]
                        entry["type"] = dv.Value.VariantType.name
                    except Exception as exc:  # noqa: BLE001
                        entry["value"] = f"<{type(exc).__name__}>"
                out.append(entry)
                if level + 1 < depth and cls == ua.NodeClass.Object:
                    await walk(child, path + [name], level + 1)
        await walk(client.nodes.objects, [], 0)
    finally:
        await client.disconnect()
    return out


def browse(url: str, *, depth: int = 6, security: str = "", username: str | None = None,
           password: str | None = None, timeout: float = 5.0,
           standard: bool = False) -> list[dict]:
    """The address space below Objects: ``[{path, node, class, value?, type?}]`` (``path`` is
    what a mapping's browse path takes, ``node`` its NodeId). The standard's own objects below
    Objects (namespace 0: Server, Aliases, …) are left out unless ``standard``."""
    import asyncio

    coro = _browse(url, depth, security, username, password, timeout, standard)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: the plain way
        return asyncio.run(coro)
    # called from inside a running loop (a notebook, Voilà): run it on a thread of its own
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
