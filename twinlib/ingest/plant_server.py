"""A simulated plant on the network: an OPC UA server and a Modbus TCP server whose values are
set by the caller (tests, benchmarks) or by the fleet simulator (``twin plant serve``).

Layout, so that a mapping can be written without browsing (:meth:`PlantServers.mapping`
writes it):

* **OPC UA** (``opc.tcp://HOST:PORT/twin/``): namespace ``urn:twinlib:plant`` (index 2), an
  object ``Plant`` with one object per asset and one Double variable per signal, NodeId
  ``ns=2;s=<asset>.<signal>``, browse path ``2:Plant/2:<asset>/2:<signal>``. Every write sets
  the source timestamp to the reading's time; the server keeps the last ``history`` values of
  every variable for HistoryRead (raw).
* **Modbus TCP**: asset *i* (from 0) answers as unit id *i + 1*; signal *j* of its kind is a
  float32 (big-endian words and bytes) at holding register ``2*j``; the input registers read
  the same values.

Both servers run in one background thread with its own event loop; ``publish`` may be called
from any thread.
"""
from __future__ import annotations

import asyncio
import logging
import struct
import threading
from datetime import datetime, timedelta, timezone

from twinlib.kinds import BUILTIN_KINDS, DEFAULT_KIND, Kind

__all__ = ["PlantServers", "NAMESPACE"]

log = logging.getLogger("twinlib.plant")
NAMESPACE = "urn:twinlib:plant"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _float_words(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


class PlantServers:
    """OPC UA and/or Modbus TCP servers for ``assets`` (asset id → kind) on ``host``."""

    def __init__(self, assets: dict[str, Kind] | list[str], *, host: str = "127.0.0.1",
                 opcua_port: int | None = None, modbus_port: int | None = None,
                 history: int = 10_000):
        if isinstance(assets, list):
            assets = {a: BUILTIN_KINDS[DEFAULT_KIND] for a in assets}
        self.assets = dict(assets)
        self.host, self.opcua_port, self.modbus_port = host, opcua_port, modbus_port
        self.history = int(history)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._opc = None
        self._opc_nodes: dict[tuple[str, str], object] = {}
        self._hist = None
        self._paused = False
        self._modbus = None
        self._regs: dict[int, list[int]] = {}
        self.units = {a: i + 1 for i, a in enumerate(self.assets)}
        self.modbus_down = False   # True: the Modbus server does not answer (a dead device)

    @property
    def opcua_url(self) -> str:
        return f"opc.tcp://{self.host}:{self.opcua_port}/twin/"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "PlantServers":
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._main, name="twin-plant", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("plant servers did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)
        self._thread = None

    def pause(self, timeout: float = 30.0) -> None:
        """Stop serving (connections are dropped, the port closes); values and history stay."""
        asyncio.run_coroutine_threadsafe(self._pause(), self._loop).result(timeout)

    def resume(self, timeout: float = 30.0) -> None:
        """Serve again on the same ports after :meth:`pause` (a restarted server)."""
        asyncio.run_coroutine_threadsafe(self._resume(), self._loop).result(timeout)

    async def _pause(self) -> None:
        self._paused = True
        if self._opc is not None:
            await self._opc.stop()
        if self._modbus is not None:
            await self._modbus.shutdown()
            self._modbus = None

    async def _resume(self) -> None:
        if self._opc is not None and self._paused:
            await self._opc.start()
        self._paused = False
        if self.modbus_port is not None and self._modbus is None:
            await self._start_modbus()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - given to start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()
            self._loop = None

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            if self.opcua_port is not None:
                await self._start_opcua()
            if self.modbus_port is not None:
                await self._start_modbus()
            self._ready.set()
            await self._stop.wait()
        finally:
            if self._modbus is not None:
                await self._modbus.shutdown()
                self._modbus = None
            if self._opc is not None:
                await self._opc.stop()
                self._opc = None

    async def _start_opcua(self) -> None:
        from asyncua import Server, ua

        logging.getLogger("asyncua").setLevel(logging.WARNING)
        server = Server()
        await server.init()
        server.set_endpoint(self.opcua_url)
        server.set_server_name("twinlib simulated plant")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        plant = await server.nodes.objects.add_object(ua.NodeId("Plant", ns), ua.QualifiedName(
            "Plant", ns))
        nodes = []
        for asset, kind in self.assets.items():
            obj = await plant.add_object(ua.NodeId(asset, ns), ua.QualifiedName(asset, ns))
            for sig in kind.names:
                var = await obj.add_variable(ua.NodeId(f"{asset}.{sig}", ns),
                                             ua.QualifiedName(sig, ns), 0.0, ua.VariantType.Double)
                self._opc_nodes[(asset, sig)] = var
                await server.write_attribute_value(var.nodeid, ua.DataValue(
                    ua.Variant(0.0, ua.VariantType.Double),
                    SourceTimestamp=datetime.now(timezone.utc),
                    ServerTimestamp=datetime.now(timezone.utc),
                    StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)))
                nodes.append(var)
        await server.start()
        if self.history:
            # every write is recorded (asyncua's own historizing samples a subscription and keeps
            # only the last of several writes within its publishing interval)
            self._hist = server.iserver.history_manager.storage
            for var in nodes:
                await self._hist.new_historized_node(var.nodeid, None, self.history)
        self._opc = server

    async def _start_modbus(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        logging.getLogger("pymodbus").setLevel(logging.ERROR)
        devices = []
        for asset, kind in self.assets.items():
            unit = self.units[asset]
            n = 2 * len(kind.names)
            self._regs.setdefault(unit, [0] * n)

            async def action(fc, start, address, count, registers, values, _unit=unit):
                if self.modbus_down:
                    from pymodbus.constants import ExcCodes
                    return ExcCodes.DEVICE_BUSY
                regs = self._regs[_unit]
                registers[0:len(regs)] = regs
                return None
            devices.append(SimDevice(id=unit, simdata=[SimData(0, count=n, values=0,
                                                               datatype=DataType.REGISTERS)],
                                     action=action))
        server = ModbusTcpServer(devices, address=(self.host, self.modbus_port))
        await server.serve_forever(background=True)
        self._modbus = server

    # -- values ----------------------------------------------------------------------------------
    def publish(self, ts_ms: int, values: dict[str, dict[str, float]], timeout: float = 10.0):
        """Set ``values[asset][signal]`` at time ``ts_ms`` on both servers (blocks until set)."""
        fut = asyncio.run_coroutine_threadsafe(self._publish(ts_ms, values), self._loop)
        return fut.result(timeout)

    async def _publish(self, ts_ms: int, values: dict[str, dict[str, float]]) -> None:
        if self._opc is not None:
            from asyncua import ua

            when = _EPOCH + timedelta(milliseconds=int(ts_ms))
            for asset, signals in values.items():
                for sig, v in signals.items():
                    node = self._opc_nodes[(asset, sig)]
                    dv = ua.DataValue(ua.Variant(float(v), ua.VariantType.Double),
                                      SourceTimestamp=when, ServerTimestamp=when)
                    await self._opc.write_attribute_value(node.nodeid, dv)
                    if self._hist is not None:
                        await self._hist.save_node_value(node.nodeid, dv)
        if self._modbus is not None:
            for asset, signals in values.items():
                kind, regs = self.assets[asset], self._regs[self.units[asset]]
                for j, sig in enumerate(kind.names):
                    if sig in signals:
                        regs[2 * j:2 * j + 2] = _float_words(float(signals[sig]))

    def set_registers(self, asset: str, address: int, words: list[int]) -> None:
        """Raw register words of an asset's unit (tests of data types and orders)."""
        regs = self._regs[self.units[asset]]
        if address + len(words) > len(regs):
            raise ValueError(f"{asset}: registers {address}..{address + len(words) - 1} are "
                             f"beyond the {len(regs)} this unit has")
        regs[address:address + len(words)] = [int(w) & 0xFFFF for w in words]

    # -- the mapping that reads these servers ------------------------------------------------------
    def mapping(self, *, opcua: bool = True, modbus: bool = True, interval_s: float = 1.0) -> str:
        """A plant mapping (TOML text) for these servers (:mod:`twinlib.ingest.mapping`)."""
        lines = ["# written by `twin plant serve`: the simulated plant's address space", ""]
        if opcua and self.opcua_port is not None:
            lines += ["[opcua]", f'endpoint = "{self.opcua_url}"', 'mode = "subscribe"',
                      "publishing_interval_ms = 100", ""]
            for asset, kind in self.assets.items():
                lines += [f'[opcua.assets."{asset}"]', f'kind = "{kind.name}"']
                lines += [f'{sig} = "ns=2;s={asset}.{sig}"' for sig in kind.names]
                lines.append("")
        if modbus and self.modbus_port is not None:
            lines += ["[modbus]", f"interval_s = {interval_s}", "timeout_s = 1.0", "retries = 2",
                      ""]
            for asset, kind in self.assets.items():
                lines += [f'[modbus.assets."{asset}"]', f'host = "{self.host}"',
                          f"port = {self.modbus_port}", f"unit = {self.units[asset]}",
                          f'kind = "{kind.name}"']
                lines += [f'{sig} = {{ address = {2 * j}, type = "float32" }}'
                          for j, sig in enumerate(kind.names)]
                lines.append("")
        return "\n".join(lines)
