"""``twin generate | init-db | store | fetch | export``: the data floor of the CLI."""
from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
from pathlib import Path

from ..config import SettingsError
from ..ingest import DEFAULT_ASSET, CsvReader, ingest_csv, write_csv
from ..ingest.validate import ValidationError, plausible_window
from ..store import DB_ERRORS, StoreBusyError, StoreError, open_store
from ..timeutil import format_seconds, parse_duration, to_ms
from ._common import CommandError, add_db_option, settings_from

#: the drivers' errors (SQLite's, PostgreSQL's); a StoreError has its own message elsewhere
_DRIVER_ERRORS = tuple(e for e in DB_ERRORS if not issubclass(e, StoreError))

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
    p.set_defaults(func=_guarded(cmd_generate))

    p = sub.add_parser("init-db", help="create the database and its tables (idempotent)")
    add_db_option(p)
    p.set_defaults(func=_guarded(cmd_init_db))

    p = sub.add_parser(
        "store", help="validate a readings CSV and load it into the database",
        description="Validate a readings CSV and load it, streamed in chunks (any file size). "
                    "Every rejected line is reported with its line number and reason (the "
                    "first 20 per reason on screen, all of them with --rejects). Exit status: "
                    "0 loaded, 3 loaded but some lines were rejected, 1 failed (strict refusal, "
                    "database busy; what was stored stays stored), 2 unusable file or options.")
    add_db_option(p)
    p.add_argument("--csv", metavar="FILE", help="CSV to load (default: <data dir>/readings.csv)")
    p.add_argument("--asset", default=None,
                   help=f"asset id for rows without one (default {DEFAULT_ASSET})")
    p.add_argument("--strict", action="store_true", help="refuse the whole file if any row is bad")
    p.add_argument("--rejects", metavar="FILE",
                   help="write every rejected line to this CSV (line, code, reason, raw)")
    p.add_argument("--kind", help="the asset kind the file's readings are (its signals, ranges and "
                                  "limits; see `twin kinds list`); default: the pump, or the kind "
                                  "the settings file gives the asset")
    p.add_argument("--location", help="location path for assets new to the store, e.g. "
                                      "plant-1/line-2")
    p.set_defaults(func=_guarded(cmd_store))

    p = sub.add_parser("fetch", help="print the latest readings")
    add_db_option(p)
    p.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    p.add_argument("--asset", help="only this asset")
    p.add_argument("--json", action="store_true", help="print JSON like GET /data")
    p.set_defaults(func=_guarded(cmd_fetch))

    p = sub.add_parser("export", help="write stored readings of a time range to CSV")
    add_db_option(p)
    p.add_argument("--out", required=True, help="CSV path, or - for standard output")
    p.add_argument("--asset", help="only this asset")
    p.add_argument("--start", help="first timestamp (inclusive)")
    p.add_argument("--end", help="last timestamp (inclusive)")
    p.set_defaults(func=_guarded(cmd_export))


def _guarded(func):
    """Database and memory failures as a clear message and exit status 1, never a traceback."""
    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (*_DRIVER_ERRORS, StoreBusyError) as exc:
            db = getattr(args, "db", None) or "the database"
            raise CommandError(f"database error on {db}: {exc} (is another process writing it? "
                               f"run the command again)") from None
        except MemoryError:
            raise CommandError("out of memory; nothing more was done (a narrower range or a "
                               "smaller file needs less)") from None
    return run


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


#: Exit status of ``twin store`` when the file was loaded but some lines were rejected.
EXIT_REJECTS = 3


def cmd_store(args: argparse.Namespace) -> int:
    import pandas as pd
    settings = settings_from(args)
    path = Path(args.csv) if args.csv else settings.data_dir / "readings.csv"
    if not path.exists():
        raise CommandError(f"{path}: no such file (run `twin generate` first, or pass --csv)")
    earliest, ahead = settings.timestamp_window()
    try:
        window = plausible_window(earliest, ahead)
    except ValueError as exc:
        raise CommandError(f"settings: [ingest] earliest: {exc}", 2) from exc
    kind = None
    try:
        if args.kind:
            kind = settings.kind(args.kind)
        elif args.asset and settings.asset_section(args.asset).get("kind"):
            kind = settings.kind_for(args.asset)
    except SettingsError as exc:
        raise CommandError(str(exc), 2) from exc
    try:  # the header and --asset first: a file that cannot load touches no database
        CsvReader(path, default_asset=args.asset, kind=kind).close()
    except ValidationError as exc:
        raise CommandError(f"{path}: {exc}", 2) from exc
    rejects_fh = writer = None
    if args.rejects:
        rejects_fh = open(args.rejects, "w", newline="", encoding="utf-8")
        writer = csv.writer(rejects_fh)
        writer.writerow(["line", "code", "reason", "raw"])

    def keep(rej) -> None:
        writer.writerow([rej.line, rej.code, rej.reason, json.dumps(rej.raw, default=str,
                                                                    ensure_ascii=False)])

    try:
        store = open_store(settings.db_path, create=True)
    except StoreBusyError as exc:
        if rejects_fh is not None:
            rejects_fh.close()
        raise CommandError(_store_failed(exc, path, settings.db_path, 0)) from None
    stored = {"n": 0}

    def progress(report) -> None:
        stored["n"] = report.inserted

    try:
        report = ingest_csv(store, path, strict=args.strict, default_asset=args.asset,
                            window=window, on_reject=keep if writer else None, on_chunk=progress,
                            kind=kind, location=args.location or (
                                settings.location_for(args.asset) if args.asset else None))
        ev = events_path(path)  # ground truth written by `twin generate`, when present
        if ev.exists():
            store.load_fault_events(pd.read_csv(ev, parse_dates=["onset", "end", "failure"]))
        meta = assets_path(path)
        if meta.exists():
            store.upsert_assets(json.loads(meta.read_text()))
        total = store.count()
    except ValidationError as exc:
        for rej in exc.rejects:
            print(f"rejected {path}:{rej.line}: {rej.reason}", file=sys.stderr)
        raise CommandError(f"{path}: {exc}") from exc
    except (*_DRIVER_ERRORS, StoreBusyError, MemoryError) as exc:
        raise CommandError(_store_failed(exc, path, settings.db_path, stored["n"])) from None
    finally:
        store.close()
        if rejects_fh is not None:
            rejects_fh.close()
    for rej in sorted(report.rejects, key=lambda r: r.line):
        print(f"rejected {path}:{rej.line}: {rej.reason}", file=sys.stderr)
    if report.rejected:
        counts = ", ".join(f"{code} {n:,}" for code, n in
                           sorted(report.reject_counts.items(), key=lambda kv: -kv[1]))
        shown = len(report.rejects)
        where = (f"every one is in {args.rejects}" if args.rejects else
                 "--rejects FILE keeps every one")
        more = f"; {shown:,} shown above, {where}" if shown < report.rejected else ""
        print(f"rejected lines by reason: {counts}{more}", file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    blank = f", {report.blank:,} blank" if report.blank else ""
    conflicts = (f" ({report.conflicts:,} with different values, kept as stored)"
                 if report.conflicts else "")
    print(f"{path}: {report.lines:,} line(s) (header, {report.received:,} reading line(s)"
          f"{blank}): {report.inserted:,} stored, {report.duplicates:,} already present"
          f"{conflicts}, {report.rejected:,} rejected; database has {total:,} readings")
    return EXIT_REJECTS if report.rejected else 0


def _store_failed(exc: BaseException, path: Path, db: Path, stored: int) -> str:
    """A database or memory failure in the middle of a load, said plainly (no traceback)."""
    if isinstance(exc, MemoryError):
        what = "ran out of memory"
    elif "locked" in str(exc) or "busy" in str(exc):
        what = f"the database {db} stayed busy (another writer held it: {exc})"
    else:
        what = f"the database {db} refused the write ({type(exc).__name__}: {exc})"
    return (f"{path}: {what}. {stored:,} reading(s) of this file were stored before that and "
            f"stay stored; run the same command again to load the rest (nothing is stored "
            f"twice)")


def cmd_fetch(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not 1 <= args.limit <= 100_000:
        raise CommandError("--limit must be between 1 and 100000", 2)
    store = open_store(settings.db_path, readonly=True)
    try:
        rows = store.latest(args.limit, asset=args.asset)
    finally:
        store.close()
    def measured(r) -> tuple[str, ...]:
        try:
            return settings.kind_for(r.asset_id, r.kind).measured
        except SettingsError:  # a kind the settings file no longer defines: show what is stored
            return tuple(r.values)

    records = []
    for r in rows:  # the shape of GET /data: id, timestamp (its one seconds form), the asset's
        rec = {"id": r.id, "timestamp": format_seconds(r.ts)}  # measured signals, asset_id
        rec.update({name: r.values.get(name) for name in measured(r)})
        rec["asset_id"] = r.asset_id
        records.append(rec)
    if args.json:
        print(json.dumps(records, ensure_ascii=False, indent=1))
        return 0
    if not records:
        print("no readings")
        return 0
    pump = ("temperature", "vibration", "pressure")
    if all(tuple(k for k in rec if k not in ("id", "timestamp", "asset_id")) == pump for rec in records):
        print(f"{'id':>9}  {'timestamp':<23} {'asset':<10} {'temperature':>11} {'vibration':>9} {'pressure':>8}")
        for r in records:
            print(f"{r['id']:>9}  {r['timestamp']:<23} {r['asset_id']:<10} {_num(r['temperature']):>11} "
                  f"{_num(r['vibration'], 4):>9} {_num(r['pressure']):>8}")
        return 0
    for r in records:  # mixed kinds: every signal by name
        sig = "  ".join(f"{k}={_num(v, 4)}" for k, v in r.items()
                        if k not in ("id", "timestamp", "asset_id"))
        print(f"{r['id']:>9}  {r['timestamp']:<23} {r['asset_id']:<12} {sig}")
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
