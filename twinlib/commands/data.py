"""``twin generate | init-db | store | fetch | export``: the data floor of the CLI."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import CommandError
from ..ingest import DEFAULT_ASSET, ingest_result, read_csv, write_csv
from ..ingest.validate import ValidationError
from ..store import open_store
from ..timeutil import format_ts, parse_duration, to_ms
from ._common import add_db_option, settings_from

__all__ = ["register", "events_path", "assets_path"]


def events_path(csv_path: Path) -> Path:
    """Where ``twin generate`` writes the fault ground truth next to the readings CSV."""
    return csv_path.with_name(csv_path.stem + "_events.csv")


def assets_path(csv_path: Path) -> Path:
    """Where ``twin generate`` writes the asset metadata next to the readings CSV."""
    return csv_path.with_name(csv_path.stem + "_assets.json")


def register(sub) -> None:
    p = sub.add_parser("generate", help="simulate a fleet's history into a CSV file")
    p.add_argument("--assets", type=int, default=4, help="number of pumps (default 4)")
    p.add_argument("--hours", type=float, default=24.0, help="hours of history (default 24)")
    p.add_argument("--freq", default="1s", help="time between readings, e.g. 1s, 500ms, 1min (default 1s)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--fault-rate", type=float, default=0.5,
                   help="fault episodes per asset per day (default 0.5)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--start", help="first timestamp, UTC (default: --hours before --end)")
    when.add_argument("--end", help="end of the history, UTC, or 'now' (default: the latest "
                      "midnight UTC, so the same options give the same file all day)")
    p.add_argument("--out", help="CSV path (default: <data dir>/readings.csv)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("init-db", help="create the database and its tables (idempotent)")
    add_db_option(p)
    p.set_defaults(func=cmd_init_db)

    p = sub.add_parser("store", help="validate a readings CSV and load it into the database")
    add_db_option(p)
    p.add_argument("--csv", metavar="FILE", help="CSV to load (default: <data dir>/readings.csv)")
    p.add_argument("--asset", default=None,
                   help=f"asset id for rows without one (default {DEFAULT_ASSET})")
    p.add_argument("--strict", action="store_true", help="refuse the whole file if any row is bad")
    p.add_argument("--rejects", metavar="FILE", help="also write rejected rows to this CSV")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("fetch", help="print the latest readings")
    add_db_option(p)
    p.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    p.add_argument("--asset", help="only this asset")
    p.add_argument("--json", action="store_true", help="print JSON like GET /data")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("export", help="write stored readings of a time range to CSV")
    add_db_option(p)
    p.add_argument("--out", required=True, help="CSV path, or - for standard output")
    p.add_argument("--asset", help="only this asset")
    p.add_argument("--start", help="first timestamp (inclusive)")
    p.add_argument("--end", help="last timestamp (inclusive)")
    p.set_defaults(func=cmd_export)


def cmd_generate(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm

    from ..simulate import FleetSimulator
    settings = settings_from(args)
    if args.assets < 1:
        raise CommandError("--assets must be at least 1", 2)
    if not args.hours > 0:
        raise CommandError("--hours must be positive", 2)
    freq_s = parse_duration(args.freq)
    out = Path(args.out) if args.out else settings.data_dir / "readings.csv"
    start = to_ms(args.start) if args.start else _end_ms(args.end) - int(args.hours * 3_600_000)
    sim = FleetSimulator(assets=args.assets, freq_s=freq_s, seed=args.seed, start=start,
                         fault_rate=args.fault_rate)
    steps = max(1, int(round(args.hours * 3600 / freq_s)))
    chunk = 21_600
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    rows = 0
    with tmp.open("w", newline="") as fh, tqdm(total=steps * args.assets, unit="rows",
                                               desc="generate", disable=None) as bar:
        done = 0
        while done < steps:
            k = min(chunk, steps - done)
            df = sim.step(k)
            write_csv(df, fh, header=not done)
            rows += len(df)
            done += k
            bar.update(len(df))
    tmp.replace(out)
    events = sim.events()
    events = events[events["onset"] < pd.Timestamp(sim.t_ms, unit="ms")].reset_index(drop=True)
    events.to_csv(events_path(out), index=False)
    assets_path(out).write_text(json.dumps(sim.assets(), indent=2))
    print(f"wrote {rows:,} readings of {args.assets} asset(s) to {out} "
          f"({len(events)} fault episode(s) in {events_path(out).name})")
    return 0


def _end_ms(end: str | None) -> int:
    from ..timeutil import now_ms
    if end is None:
        return now_ms() // 86_400_000 * 86_400_000
    if end.strip().lower() == "now":
        return now_ms() // 1000 * 1000
    return to_ms(end)


def cmd_init_db(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = open_store(settings.db_path, create=True)
    n = store.count()
    store.close()
    print(f"database ready: {settings.db_path} ({n:,} readings)")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    import pandas as pd
    settings = settings_from(args)
    path = Path(args.csv) if args.csv else settings.data_dir / "readings.csv"
    if not path.exists():
        raise CommandError(f"{path}: no such file (run `twin generate` first, or pass --csv)")
    result = read_csv(path, default_asset=args.asset)
    for rej in result.rejects:
        print(f"rejected {path}:{rej.line}: {rej.reason}", file=sys.stderr)
    if args.rejects and result.rejects:
        pd.DataFrame([{"line": r.line, "reason": r.reason, **{f"field_{k}": v for k, v in r.raw.items()}}
                      for r in result.rejects]).to_csv(args.rejects, index=False)
    store = open_store(settings.db_path, create=True)
    try:
        report = ingest_result(store, result, source="csv", strict=args.strict, progress=True)
        ev = events_path(path)  # ground truth written by `twin generate`, when present
        if ev.exists():
            store.load_fault_events(pd.read_csv(ev, parse_dates=["onset", "end", "failure"]))
        meta = assets_path(path)
        if meta.exists():
            store.upsert_assets(json.loads(meta.read_text()))
        total = store.count()
    except ValidationError as exc:
        raise CommandError(f"{path}: {exc}") from exc
    finally:
        store.close()
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{path}: {report.received:,} row(s): {report.inserted:,} stored, "
          f"{report.duplicates:,} already present, {len(report.rejects):,} rejected; "
          f"database has {total:,} readings")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not 1 <= args.limit <= 100_000:
        raise CommandError("--limit must be between 1 and 100000", 2)
    store = open_store(settings.db_path, readonly=True)
    try:
        rows = store.latest(args.limit, asset=args.asset)
    finally:
        store.close()
    records = [{"id": r.id, "timestamp": format_ts(r.ts), "asset_id": r.asset_id,
                "temperature": r.temperature, "vibration": r.vibration, "pressure": r.pressure}
               for r in rows]
    if args.json:
        print(json.dumps(records, ensure_ascii=False, indent=1))
        return 0
    if not records:
        print("no readings")
        return 0
    print(f"{'id':>9}  {'timestamp':<23} {'asset':<10} {'temperature':>11} {'vibration':>9} {'pressure':>8}")
    for r in records:
        print(f"{r['id']:>9}  {r['timestamp']:<23} {r['asset_id']:<10} {_num(r['temperature']):>11} "
              f"{_num(r['vibration'], 4):>9} {_num(r['pressure']):>8}")
    return 0


def _num(v, digits=2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = open_store(settings.db_path, readonly=True)
    try:
        df = store.window(to_ms(args.start) if args.start else None,
                          to_ms(args.end) if args.end else None, asset=args.asset)
    finally:
        store.close()
    n = write_csv(df, sys.stdout if args.out == "-" else args.out)
    if args.out != "-":
        print(f"wrote {n:,} readings to {args.out}")
    return 0
