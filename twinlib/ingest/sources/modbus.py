"""Readings polled from Modbus TCP devices (pymodbus): registers mapped to an asset's signals.

The mapping (``[modbus]`` of the plant mapping, :mod:`twinlib.ingest.mapping`) gives each asset
a device (host, port, unit id), a poll interval, and per signal the register address, table
(holding or input), data type (int16, uint16, int32, uint32, float32), word and byte order,
scale and offset: ``value = raw * scale + offset``.

Polling: one connection per host:port, shared by the units behind it (a gateway); each asset is
read on its own interval grid (a reading every ``interval_s`` at multiples of it), contiguous
registers in one request (at most 120 registers each). The reading's time is the grid time of
the poll, so a monitor restarted within one interval does not store the same instant twice.

The readings of one poll round are handed to the store together (the source lingers up to a
quarter of the interval, at most 250 ms, after the first reading of a round).

Failures: every request has ``timeout_s`` and ``retries``; a device that answers with a Modbus
exception is reported (a reject naming the entry), a connection that fails is re-opened with
back-off (0.5 s doubling to 30 s). While a device does not answer nothing is stored for it, and
the alarm engine raises ``stale`` for the asset from that silence. Modbus carries no history:
polls missed while a device or the network was down are gone.

On start, the first poll of each device checks the mapping against it: an address the device
refuses (Modbus exception 2, illegal data address) stops the start with the entry named.
"""
from __future__ import annotations

import asyncio
import logging
import math
import struct
from typing import Callable

from twinlib.ingest.mapping import MappingError, ModbusDevice, ModbusMapping, ModbusRegister
from twinlib.ingest.sources._plant import Backoff, PlantSource
from twinlib.timeutil import now_ms

__all__ = ["ModbusSource", "decode_registers", "encode_value"]

log = logging.getLogger("twinlib.monitor")

_STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
_MAX_BLOCK = 120   # registers per read request (the protocol allows 125)
_EXC_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "device failure", 5: "acknowledge", 6: "device busy",
              10: "gateway path unavailable", 11: "gateway target failed to respond"}


def decode_registers(words, dtype: str, word_order: str = "big", byte_order: str = "big"):
    """Register words (16-bit ints) as a number of ``dtype``.

    ``word_order`` big: the first register holds the most significant word; ``byte_order``
    big: each register's high byte first (the Modbus standard). float32 "CDAB" devices are
    word_order little, byte_order big.
    """
    words = list(words)
    if word_order == "little":
        words.reverse()
    raw = b"".join(struct.pack(">H" if byte_order == "big" else "<H", w & 0xFFFF)
                   for w in words)
    return struct.unpack(">" + _STRUCT[dtype], raw)[0]


def encode_value(value, dtype: str, word_order: str = "big", byte_order: str = "big") -> list:
    """The inverse of :func:`decode_registers` (tests, the simulated plant)."""
    raw = struct.pack(">" + _STRUCT[dtype], value)
    words = [struct.unpack(">H" if byte_order == "big" else "<H", raw[i:i + 2])[0]
             for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    return words


def _blocks(registers: tuple[ModbusRegister, ...]) -> list[tuple[str, int, int, list]]:
    """Contiguous read requests: (table, start, count, registers in it)."""
    out: list[tuple[str, int, int, list]] = []
    for table in ("holding", "input"):
        regs = sorted((r for r in registers if r.table == table), key=lambda r: r.address)
        cur: list = []
        start = end = 0
        for r in regs:
            if cur and r.address <= end + 4 and r.address + r.count - start <= _MAX_BLOCK:
                cur.append(r)
                end = max(end, r.address + r.count)
            else:
                if cur:
                    out.append((table, start, end - start, cur))
                cur, start, end = [r], r.address, r.address + r.count
        if cur:
            out.append((table, start, end - start, cur))
    return out


class _DeviceDown(Exception):
    pass


class ModbusSource(PlantSource):
    """Polls the mapped registers of Modbus TCP devices (module docstring)."""

    name = "modbus"

    def __init__(self, mapping: ModbusMapping, *, clock: Callable[[], int] = now_ms):
        fastest = min(d.interval_s for d in mapping.devices)
        super().__init__({d.asset: d.kind for d in mapping.devices}, settle_s=0.0,
                         linger_s=min(0.25, fastest / 4), clock=clock)
        self.mapping = mapping
        self._plan = {d.asset: _blocks(d.registers) for d in mapping.devices}
        self.polls = self.failures = 0
        self.down: dict[str, str] = {}        # asset → why it is not answering

    def _expected(self, asset: str) -> int:
        return 1  # a poll delivers all of an asset's signals at once (put_many)

    def open(self, store, **kw) -> None:
        kw.setdefault("start_timeout", (self.mapping.timeout_s * (self.mapping.retries + 1)) * 2
                      + 5)
        super().open(store, **kw)

    # -- one device ------------------------------------------------------------------------------
    async def _read_block(self, client, dev: ModbusDevice, table: str, start: int, count: int):
        fn = client.read_holding_registers if table == "holding" else client.read_input_registers
        rr = await fn(start, count=count, device_id=dev.unit)
        if rr.isError():
            code = getattr(rr, "exception_code", 0)
            return code
        return rr.registers

    async def _locate(self, client, dev: ModbusDevice, regs: list) -> ModbusRegister | None:
        """The first register of a refused block that the device refuses on its own."""
        for r in regs:
            got = await self._read_block(client, dev, r.table, r.address, r.count)
            if isinstance(got, int):
                return r
        return None

    async def _poll(self, client, dev: ModbusDevice, tick_ms: int, first: bool) -> None:
        values = []
        for table, start, count, regs in self._plan[dev.asset]:
            got = await self._read_block(client, dev, table, start, count)
            if isinstance(got, int):
                why = _EXC_NAMES.get(got, f"exception {got}")
                if got == 2:  # illegal data address: the mapping does not fit the device
                    bad = await self._locate(client, dev, regs) or regs[0]
                    msg = (f"{bad.where}: {bad.table} register {bad.address} "
                           f"({bad.type}, {bad.count} register(s)) is out of range on unit "
                           f"{dev.unit} at {dev.host}:{dev.port} (device says: {why})")
                    if first:
                        raise MappingError(msg)
                    self.reject(msg)
                    continue
                raise _DeviceDown(f"unit {dev.unit} answered {why}")
            for r in regs:
                i = r.address - start
                raw = decode_registers(got[i:i + r.count], r.type, r.word_order, r.byte_order)
                v = raw * r.scale + r.offset
                if not math.isfinite(v):
                    self.reject(f"{r.where}: register {r.address} holds {raw!r}, not a finite "
                                f"number")
                    continue
                values.append((dev.asset, tick_ms, r.signal, v))
        self.polls += 1
        if values:
            self.put_many(values)

    # -- one connection (host:port) and its devices ----------------------------------------------
    async def _endpoint(self, host: str, port: int, devices: list[ModbusDevice],
                        first_done: asyncio.Event) -> None:
        from pymodbus.client import AsyncModbusTcpClient
        from pymodbus.exceptions import ModbusException

        backoff = Backoff()
        checked: set[str] = set()
        next_due = {d.asset: 0 for d in devices}
        while not self.stopping:
            client = AsyncModbusTcpClient(host, port=port, timeout=self.mapping.timeout_s,
                                          retries=self.mapping.retries, reconnect_delay=0)
            try:
                if not await client.connect():
                    raise _DeviceDown(f"cannot connect to {host}:{port}")
                backoff.reset()
                while not self.stopping:
                    now = self.clock()
                    for dev in devices:
                        step = int(round(dev.interval_s * 1000))
                        if next_due[dev.asset] == 0:
                            next_due[dev.asset] = (now // step) * step
                        if now < next_due[dev.asset]:
                            continue
                        tick = next_due[dev.asset]
                        # behind by more than one interval (a slow device): skip to now
                        next_due[dev.asset] = max(tick + step, (now // step) * step + step)
                        try:
                            await self._poll(client, dev, tick, dev.asset not in checked)
                        except _DeviceDown as exc:
                            self._mark_down(dev, str(exc))
                            continue
                        checked.add(dev.asset)
                        if dev.asset in self.down:
                            log.info("modbus: %s (unit %d at %s:%d) answers again", dev.asset,
                                     dev.unit, host, port)
                            del self.down[dev.asset]
                    if len(checked) == len(devices) or all(
                            d.asset in checked or d.asset in self.down for d in devices):
                        first_done.set()
                    due = min(next_due.values())
                    await self.sleep(max(0.0, (due - self.clock()) / 1000.0))
            except MappingError as exc:
                self.started(exc)
                self._stop.set()
                return
            except (_DeviceDown, ModbusException, OSError, asyncio.TimeoutError) as exc:
                self.failures += 1
                for dev in devices:
                    self._mark_down(dev, f"{type(exc).__name__}: {exc}")
                first_done.set()
            finally:
                client.close()
            await self.sleep(backoff.next())

    def _mark_down(self, dev: ModbusDevice, why: str) -> None:
        self.failures += 1
        if dev.asset not in self.down:
            log.warning("modbus: %s (unit %d at %s:%d) does not answer: %s; retrying",
                        dev.asset, dev.unit, dev.host, dev.port, why)
        self.down[dev.asset] = why
        self.last_error = why

    async def _run(self) -> None:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        groups: dict[tuple[str, int], list[ModbusDevice]] = {}
        for dev in self.mapping.devices:
            groups.setdefault((dev.host, dev.port), []).append(dev)
        firsts = [asyncio.Event() for _ in groups]
        tasks = [asyncio.create_task(self._endpoint(h, p, devs, ev))
                 for ((h, p), devs), ev in zip(groups.items(), firsts)]

        async def _all_first():
            await asyncio.gather(*(ev.wait() for ev in firsts))
            self.started()
        starter = asyncio.create_task(_all_first())
        try:
            while not self.stopping:
                await asyncio.sleep(0.1)
        finally:
            starter.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, starter, return_exceptions=True)

    def describe(self) -> dict:
        return {"source": self.name, "devices": len(self.mapping.devices), "polls": self.polls,
                "values": self.values_received, "failures": self.failures,
                "down": dict(self.down), "last_error": self.last_error}
