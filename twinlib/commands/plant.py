"""``twin plant serve``: a simulated plant on loopback (OPC UA and/or Modbus TCP servers fed by
the fleet simulator); ``twin opcua browse URL``: list an OPC UA server's address space.

    twin plant serve --opcua 4840 --modbus 5020 --assets 4 --write-mapping plant.toml
    twin run --source opcua --mapping plant.toml
    twin opcua browse opc.tcp://127.0.0.1:4840/twin/
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time

from twinlib.commands._common import CommandError

__all__ = ["register"]


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < v < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1–65535, got {v}")
    return v


def register(subparsers) -> None:
    """Add ``twin plant`` and ``twin opcua`` to the CLI."""
    p = subparsers.add_parser(
        "plant", help="a simulated plant: OPC UA / Modbus TCP servers fed by the simulator",
        description="Serve the simulated fleet the way a plant would: an OPC UA server and/or a "
                    "Modbus TCP server whose values come from the fleet simulator, so the "
                    "monitor can read them with --source opcua / modbus.")
    sub = p.add_subparsers(dest="plant_command", required=True)
    s = sub.add_parser("serve", help="run the servers until Ctrl-C")
    s.add_argument("--opcua", type=_port, nargs="?", const=4840, default=None, metavar="PORT",
                   help="serve OPC UA on PORT (default 4840)")
    s.add_argument("--modbus", type=_port, nargs="?", const=5020, default=None, metavar="PORT",
                   help="serve Modbus TCP on PORT (default 5020)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--assets", type=int, default=4, help="simulated pumps (default 4)")
    s.add_argument("--rate", type=float, default=1.0, help="updates per second (default 1)")
    s.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")
    s.add_argument("--fault-rate", type=float, default=0.5,
                   help="fault episodes per asset per day (default 0.5)")
    s.add_argument("--write-mapping", metavar="FILE",
                   help="write the plant mapping for these servers to FILE (for twin run)")
    s.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    s.set_defaults(func=_serve)

    o = subparsers.add_parser("opcua", help="OPC UA tools (browse a server's address space)")
    osub = o.add_subparsers(dest="opcua_command", required=True)
    b = osub.add_parser("browse", help="list the variables of an OPC UA server, with the path "
                                       "and NodeId a plant mapping takes")
    b.add_argument("url", help="endpoint, e.g. opc.tcp://127.0.0.1:4840/twin/")
    b.add_argument("--depth", type=int, default=6, help="levels below Objects (default 6)")
    b.add_argument("--security", default="",
                   help="asyncua security string, e.g. Basic256Sha256,SignAndEncrypt,cert.pem,"
                        "key.pem")
    b.add_argument("--username", help="user (password from $TWIN_OPCUA_PASSWORD)")
    b.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    b.set_defaults(func=_browse)


def _serve(args: argparse.Namespace) -> int:
    import numpy as np

    from twinlib.ingest.plant_server import PlantServers
    from twinlib.simulate import FleetSimulator
    from twinlib.timeutil import now_ms

    if args.opcua is None and args.modbus is None:
        raise CommandError("give --opcua [PORT] and/or --modbus [PORT]", 2)
    if not args.rate > 0 or args.assets < 1:
        raise CommandError("--rate must be > 0 and --assets at least 1", 2)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    step_s = 1.0 / args.rate
    sim = FleetSimulator(args.assets, freq_s=step_s, seed=args.seed, fault_rate=args.fault_rate)
    servers = PlantServers(sim.asset_ids, host=args.host, opcua_port=args.opcua,
                           modbus_port=args.modbus)
    try:
        servers.start()
    except OSError as exc:
        raise CommandError(f"cannot serve: {exc}") from exc
    if args.write_mapping:
        with open(args.write_mapping, "w", encoding="utf-8") as fh:
            fh.write(servers.mapping(interval_s=max(step_s, 0.1)))
    where = []
    if args.opcua:
        where.append(f"OPC UA {servers.opcua_url}")
    if args.modbus:
        where.append(f"Modbus TCP {args.host}:{args.modbus} (units 1–{args.assets})")
    print(f"twin plant: serving {args.assets} simulated pump(s) on {', '.join(where)}"
          + (f"; mapping in {args.write_mapping}" if args.write_mapping else "")
          + "; Ctrl-C to stop", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    end = time.monotonic() + args.duration if args.duration else math.inf
    signals = ("temperature", "vibration", "pressure", "load", "speed", "ambient")
    try:
        while not stop.is_set() and time.monotonic() < end:
            df = sim.step(1)
            ts = int(df["timestamp"].iloc[0].value // 1_000_000) if len(df) else sim.t_ms
            wait = (ts - now_ms()) / 1000.0
            if wait > 0 and stop.wait(wait):
                break
            values = {}
            for row in df.itertuples(index=False):
                vals = {s: float(getattr(row, s)) for s in signals
                        if hasattr(row, s) and np.isfinite(getattr(row, s))}
                if vals:
                    values[row.asset_id] = vals
            if values:
                servers.publish(ts, values)
    finally:
        servers.stop()
    return 0


def _browse(args: argparse.Namespace) -> int:
    import os

    from twinlib.ingest.sources.opcua import browse

    try:
        entries = browse(args.url, depth=args.depth, security=args.security,
                         username=args.username, password=os.environ.get("TWIN_OPCUA_PASSWORD"))
    except (OSError, TimeoutError) as exc:
        raise CommandError(f"cannot reach {args.url}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - asyncua raises many kinds
        raise CommandError(f"{args.url}: {type(exc).__name__}: {exc}") from exc
    if args.json:
        for e in entries:
            print(json.dumps(e, default=str))
        return 0
    width = max([len(e["path"]) for e in entries] + [4])
    print(f"{'path':<{width}}  {'class':<8}  {'node':<32}  value")
    for e in entries:
        print(f"{e['path']:<{width}}  {e['class']:<8}  {e['node']:<32}  {e.get('value', '')}")
    return 0
