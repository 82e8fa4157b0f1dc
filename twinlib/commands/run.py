"""``twin run``: the live monitor — a source streamed through validation, the store, the alarm
engine and notifications until Ctrl-C / SIGTERM (or the end of a replay).

    twin run --source sim --assets 4 --rate 1
    twin run --source replay --speed 300 --file machine_temperature_system_failure.csv
    twin run --source mqtt --broker 127.0.0.1:1883 --topic 'twin/+/readings'
    twin run --source opcua --mapping plant.toml     # OPC UA nodes → signals ([opcua])
    twin run --source modbus --mapping plant.toml    # Modbus TCP registers → signals ([modbus])
    twin run --check            # exit 0 if a monitor wrote a heartbeat recently (health checks)
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys

from twinlib.commands._common import CommandError, add_db_option
from twinlib.config import SENSORS, get_settings

__all__ = ["register", "build_source", "parse_speed"]

SOURCES = ("sim", "replay", "mqtt", "opcua", "modbus")


def parse_speed(text: str) -> float:
    """`--speed`: a factor > 0, or `max` for as fast as the pipeline takes it."""
    if str(text).strip().lower() in ("max", "inf"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number or 'max', got {text!r}") from None
    if not value > 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"speed must be > 0, got {text!r}")
    return value


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return parse


def _sensors(text: str) -> tuple[str, ...]:
    """`--required`: signal names (checked against the source's kind in `build_source`)."""
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not names:
        raise argparse.ArgumentTypeError("give signal names, comma-separated (e.g. temperature)")
    return names


def _check_required(required, kind) -> None:
    """Refuse `--required` names that are not signals of the readings' kind."""
    names = kind.names if kind is not None else SENSORS
    unknown = [s for s in required if s not in names]
    if unknown:
        what = f"kind {kind.name!r}" if kind is not None else "the pump"
        raise CommandError(f"--required: {', '.join(unknown)} not a signal of {what} "
                           f"(its signals: {', '.join(names)})", 2)


def register(subparsers) -> None:
    """Add ``twin run`` to the CLI."""
    p = subparsers.add_parser(
        "run", help="run the live monitor (sim, replay, MQTT, OPC UA or Modbus source)",
        description="The live monitor: stream readings from a source through validation into the "
                    "store, run the alarm engine on what arrived, and send notifications "
                    "([notify.webhook] / [notify.email] in the settings file). Stops cleanly on "
                    "Ctrl-C or SIGTERM; a restart resumes where it stopped.")
    p.add_argument("--source", choices=SOURCES, default="sim",
                   help="where readings come from (default: sim)")
    add_db_option(p)
    sim = p.add_argument_group("sim source")
    sim.add_argument("--assets", type=_positive(int), default=4,
                     help="number of simulated pumps (default 4)")
    sim.add_argument("--rate", type=_positive(float), default=1.0,
                     help="readings per second per asset (default 1)")
    sim.add_argument("--seed", type=int, default=42,
                     help="simulator seed (default 42, the same pumps as `twin generate`)")
    sim.add_argument("--fault-rate", type=float, default=0.5,
                     help="fault episodes per asset per day (default 0.5)")
    rep = p.add_argument_group("replay source")
    rep.add_argument("file", nargs="?", help="recording to replay (same as --file)")
    rep.add_argument("--file", dest="file_opt", metavar="FILE",
                     help="twinlib CSV, SKAB (;-separated) or NAB (timestamp,value) file")
    rep.add_argument("--speed", type=parse_speed, default=1.0,
                     help="replay: speed factor, e.g. 60 (one recorded minute per second), or "
                          "'max'; sim: time-lapse factor (faults develop this much faster; "
                          "readings keep --rate). Default 1 (real time)")
    rep.add_argument("--format", choices=("auto", "twinlib", "skab", "nab", "csv"), default="auto",
                     help="file format (default: from the header)")
    rep.add_argument("--asset", help="asset id for the replayed readings (default: from the "
                                     "file name; twinlib CSVs carry their own)")
    p.add_argument("--kind", metavar="KIND",
                   help="replay and mqtt: the kind (built-in or [kinds.<name>] in the settings "
                        "file) of the readings — a replayed CSV's columns are that kind's "
                        "signals; for MQTT the default is each asset's kind from the settings "
                        "file ([assets.\"<id>\"] kind), else the pump")
    rep.add_argument("--timestamps", choices=("original", "now"), default=None,
                     help="now: move the replay onto the wall clock (first row = start of the "
                          "replay, intervals divided by --speed), so the dashboard and stale "
                          "checks see a live machine; original: keep the recorded times. "
                          "Default: now, or original with --speed max")
    mq = p.add_argument_group("mqtt source")
    mq.add_argument("--broker", default="127.0.0.1:1883", help="host[:port] (default "
                                                               "127.0.0.1:1883)")
    mq.add_argument("--topic", default="twin/+/readings",
                    help="subscription; the '+' level is the asset id (default twin/+/readings)")
    mq.add_argument("--qos", type=int, choices=(0, 1, 2), default=1,
                    help="subscription QoS (default 1: at-least-once, acknowledged after storing)")
    mq.add_argument("--client-id", default="twin-monitor",
                    help="MQTT client id; the broker keeps this session's messages while the "
                         "monitor is down (default twin-monitor)")
    mq.add_argument("--username", help="broker user (password from $TWIN_MQTT_PASSWORD)")
    plant = p.add_argument_group("opcua and modbus sources")
    plant.add_argument("--mapping", metavar="FILE",
                       help="plant mapping (TOML: [opcua] / [modbus] tables mapping nodes and "
                            "registers to each asset's signals); default: the settings file's "
                            "[plant] table")
    plant.add_argument("--endpoint", metavar="URL",
                       help="opcua: server endpoint (overrides the mapping's opcua.endpoint)")
    plant.add_argument("--opcua-mode", choices=("subscribe", "poll"), default=None,
                       help="opcua: data-change subscriptions (default) or polling")
    loop = p.add_argument_group("monitor")
    loop.add_argument("--required", type=_sensors, default=None,
                      help="signals a reading must have, comma-separated (default: the "
                           "kind's measured signals; a pump's three)")
    loop.add_argument("--tick", type=_positive(float), default=1.0,
                      help="seconds between staleness checks and heartbeats (default 1)")
    loop.add_argument("--batch", type=_positive(int), default=5000,
                      help="most readings stored per transaction (default 5000)")
    loop.add_argument("--duration", type=_positive(float), default=None,
                      help="stop after this many seconds (default: run until stopped)")
    loop.add_argument("--no-notify", action="store_true",
                      help="do not send notifications (alarms are still recorded)")
    loop.add_argument("--notify-max-age", type=_positive(float), default=3600.0,
                      help="do not notify about alarms on readings older than this many seconds "
                           "(history loaded before the first start); default 3600")
    loop.add_argument("--log-level", default="INFO",
                      choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default INFO")
    loop.add_argument("--log-format", choices=("text", "json"), default=None,
                      help="text (default) or json: one JSON object per line "
                           "(default: TWIN_LOG_FORMAT or [logging] format)")
    loop.add_argument("--metrics-port", type=int, default=None,
                      help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (default: "
                           "TWIN_MONITOR_METRICS_PORT or [monitor] metrics_port; off)")
    loop.add_argument("--check", action="store_true",
                      help="do not run: exit 0 if a monitor wrote a heartbeat into the database "
                           "within --max-age seconds, else 1 (for health checks)")
    loop.add_argument("--max-age", type=_positive(float), default=30.0,
                      help="heartbeat age accepted by --check (default 30 s)")
    p.set_defaults(func=_run)


def build_source(args: argparse.Namespace, kinds=None, settings=None):
    """The source the options ask for (``settings``: each MQTT asset's kind)."""
    from twinlib.ingest.sources import MqttSource, ReplaySource, SimSource

    kind = None
    if getattr(args, "kind", None):
        if args.source not in ("replay", "mqtt"):
            raise CommandError(f"--kind is for replay and mqtt sources; the {args.source} source "
                               f"takes each asset's kind from its mapping or simulator", 2)
        known = kinds if kinds is not None else {}
        if args.kind not in known:
            raise CommandError(f"unknown kind {args.kind!r} (known: {', '.join(sorted(known))}; "
                               f"declare others as [kinds.<name>] in the settings file)", 2)
        kind = known[args.kind]

    if args.source == "sim":
        if math.isinf(args.speed):
            raise CommandError("--speed max is for replays; give the sim a factor, e.g. 10", 2)
        return SimSource(assets=args.assets, rate=args.rate, seed=args.seed,
                         fault_rate=args.fault_rate, speed=args.speed)
    if args.source == "replay":
        if args.file and args.file_opt and args.file != args.file_opt:
            raise CommandError("give the replay file once (FILE or --file)", 2)
        path = args.file_opt or args.file
        if not path:
            raise CommandError("--source replay needs a file: twin run --source replay --file "
                               "FILE", 2)
        try:
            timestamps = args.timestamps or ("original" if math.isinf(args.speed) else "now")
            source = ReplaySource(path, speed=args.speed, fmt=args.format, asset=args.asset,
                                  timestamps=timestamps, kinds=kinds, kind=kind)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc), 2) from exc
        if args.required:
            _check_required(args.required, source.kind)
            source.required = args.required
        return source
    if args.source in ("opcua", "modbus"):
        return _plant_source(args, kinds)
    fmt = {}
    if args.mapping:  # gateway payload formats: the [[mqtt.subscriptions]] entry of --topic
        from twinlib.ingest.mapping import MappingError, load_mapping

        try:
            subs = load_mapping(args.mapping, kinds=kinds).mqtt
        except MappingError as exc:
            raise CommandError(str(exc), 2) from exc
        chosen = [s for s in subs if s.topic == args.topic] or (subs if len(subs) == 1 else [])
        if not chosen:
            raise CommandError(f"{args.mapping}: no [[mqtt.subscriptions]] entry with topic "
                               f"{args.topic!r} (give --topic)", 2)
        sub = chosen[0]
        fmt = {"fmt": sub.format, "kind": sub.kind, "signals": sub.signals,
               "asset_level": sub.asset_level, "signal_level": sub.signal_level,
               "settle_s": sub.settle_s}
        args.topic = sub.topic
    if kind is not None:
        if fmt and fmt.get("kind") is not None and fmt["kind"].name != kind.name:
            raise CommandError(f"--kind {kind.name} disagrees with the mapping's kind "
                               f"{fmt['kind'].name!r} for topic {args.topic!r}", 2)
        fmt.setdefault("fmt", "twinlib")
        fmt["kind"] = kind
    kind_of = None
    if settings is not None and fmt.get("kind") is None:
        kind_of = settings.kind_for   # each asset's kind, from the settings file
    if args.required:
        _check_required(args.required, fmt.get("kind"))
    try:
        source = MqttSource(args.broker, topic=args.topic, qos=args.qos,
                            client_id=args.client_id, username=args.username,
                            password=os.environ.get("TWIN_MQTT_PASSWORD"),
                            required=args.required or None, kind_of=kind_of, **fmt)
    except ValueError as exc:
        raise CommandError(str(exc), 2) from exc
    return source


def _plant_source(args: argparse.Namespace, kinds=None):
    """`--source opcua|modbus`: the mapping checked now (errors name the entry)."""
    import dataclasses

    from twinlib.ingest.mapping import MappingError, load_mapping, parse_mapping

    settings = get_settings(db_path=getattr(args, "db", None))
    try:
        if args.mapping:
            mapping = load_mapping(args.mapping, kinds=kinds, settings_file=settings.file)
        else:
            mapping = parse_mapping({"plant": settings.section("plant")}, kinds=kinds,
                                    settings_file=settings.file,
                                    source=f"{settings.settings_file} [plant]")
    except MappingError as exc:
        raise CommandError(str(exc), 2) from exc
    if args.source == "opcua":
        from twinlib.ingest.sources.opcua import OpcuaSource

        if mapping.opcua is None:
            raise CommandError(f"{mapping.source}: no [opcua] table (see `twin run --help` and "
                               f"the README, 'Connect your plant')", 2)
        m = mapping.opcua
        changes = {k: v for k, v in (("endpoint", args.endpoint), ("mode", args.opcua_mode))
                   if v}
        return OpcuaSource(dataclasses.replace(m, **changes) if changes else m)
    from twinlib.ingest.sources.modbus import ModbusSource

    if mapping.modbus is None:
        raise CommandError(f"{mapping.source}: no [modbus] table (see the README, 'Connect your "
                           f"plant')", 2)
    return ModbusSource(mapping.modbus)


def _check(settings, max_age: float) -> int:
    from twinlib.monitor import read_heartbeat
    from twinlib.store import open_store
    from twinlib.timeutil import now_ms

    if not settings.db_path.exists():
        print(f"no database at {settings.db_path}", file=sys.stderr)
        return 1
    store = open_store(settings.db_path, readonly=True)
    try:
        beat = read_heartbeat(store)
    finally:
        store.close()
    if beat is None:
        print("no monitor heartbeat yet", file=sys.stderr)
        return 1
    age = (now_ms() - int(beat.get("ts", 0))) / 1000.0
    print(json.dumps({"age_s": round(age, 1), **beat}, default=str))
    return 0 if age <= max_age else 1


def _run(args: argparse.Namespace) -> int:
    from twinlib.ingest.mapping import MappingError
    from twinlib.monitor import Monitor, MonitorBusyError, MonitorLock, build_engine
    from twinlib.notify import notifier_from_settings
    from twinlib.store import open_store

    settings = get_settings(db_path=args.db, log_format=getattr(args, "log_format", None),
                            monitor_metrics_port=getattr(args, "metrics_port", None))
    if args.check:
        return _check(settings, args.max_age)
    from twinlib.logfmt import configure_logging
    configure_logging(args.log_level, settings.log_format)
    source = build_source(args, settings.kinds, settings)
    notifier = None if args.no_notify else notifier_from_settings(settings.file)
    if not settings.db_url:  # a PostgreSQL URL has no directory to make
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    lock = MonitorLock(settings.db_path)
    try:
        lock.acquire()
    except MonitorBusyError as exc:
        source.close()
        raise CommandError(str(exc)) from exc
    store = open_store(settings.db_path, create=True)
    monitor = None
    try:
        engine = build_engine(store, settings)  # by shards on PostgreSQL (several monitors)
        # a change of thresholds / rules since the last start goes to the alarm audit log
        from twinlib.alarms import resolve_user
        store.record_rule_config(settings.file, by=resolve_user(settings))
        from twinlib.commands.retention import retention_policy
        monitor = Monitor(store, source, engine=engine, notifier=notifier, tick_s=args.tick,
                          batch_rows=args.batch, notify_max_age_s=args.notify_max_age,
                          retention=retention_policy(settings))
        if settings.monitor_metrics_port:
            from twinlib.metrics import serve_monitor_metrics
            try:
                metrics_server = serve_monitor_metrics(monitor, settings.db_path,
                                                       settings.monitor_metrics_port)
            except OSError as exc:
                raise CommandError(f"metrics port {settings.monitor_metrics_port}: {exc}") from exc
            print(f"twin run: metrics on http://127.0.0.1:{metrics_server.server_port}/metrics",
                  file=sys.stderr, flush=True)

        def _stop(signum, frame):
            logging.getLogger("twinlib.monitor").info("monitor: %s received, stopping",
                                                       signal.Signals(signum).name)
            monitor.stop()
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        channels = [c.name for c in notifier.channels] if notifier else []
        print(f"twin run: {args.source} → {settings.db_path} (notify: "
              f"{', '.join(channels) or 'none'}); Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            stats = monitor.run(duration_s=args.duration)
        except MappingError as exc:  # checked against the device when the source connected
            raise CommandError(str(exc), 2) from exc
    finally:
        if monitor is None:
            source.close()
            if notifier is not None:
                notifier.close(timeout=1.0)
        store.close()
        lock.release()
    print(f"twin run: stopped — {stats.inserted:,} stored, {stats.duplicates:,} already present, "
          f"{stats.rejected:,} rejected, alarms raised {stats.events.get('raised', 0)}, "
          f"escalated {stats.events.get('escalated', 0)}, cleared "
          f"{stats.events.get('cleared', 0)}", file=sys.stderr)
    return 0
