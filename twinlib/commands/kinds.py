"""``twin kinds``: list the kinds twinlib knows, show one, or infer one from a CSV file."""
from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pandas as pd

from ..config import SettingsError
from ..kinds import Kind, KindError, Signal, kind_to_toml
from ._common import CommandError, settings_from

#: Column names that are a reading's time, identity or answer, never a signal.
_NOT_SIGNALS = {"timestamp", "datetime", "time", "ts", "asset_id", "label", "kind", "location",
                "anomaly", "changepoint", "id"}
#: A column whose name says it is an operating input, not a monitored quantity.
_STATE_WORDS = ("load", "speed", "rpm", "setpoint", "ambient", "command", "valve_position")
#: The lowest temperature there is, in °C (the floor of an inferred temperature's valid range).
ABSOLUTE_ZERO_C = -273.15
#: Unit guesses from a column's name (the user checks them: nothing is known for sure).
_UNIT_GUESS = (("thermocouple", "°C"), ("temp", "°C"), ("pressure", "bar"), ("current", "A"),
               ("voltage", "V"), ("volt", "V"), ("flow", "l/min"), ("accel", "g"),
               ("vibration", "g RMS"), ("speed", "rpm"), ("rpm", "rpm"), ("power", "kW"),
               ("humidity", "%"), ("level", "%"))


def register(sub) -> None:
    p = sub.add_parser("kinds", help="asset kinds: list, show, or infer one from a CSV file",
                       description="Asset kinds say what an asset measures: signals, units, roles "
                                   "(measured/state), valid ranges and alarm limits. Built-in: pump, "
                                   "skab-testbed, machine-temperature; more in the settings file "
                                   "under [kinds.<name>].")
    ks = p.add_subparsers(dest="kinds_command", metavar="ACTION")
    ls = ks.add_parser("list", help="every kind, one line each")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    show = ks.add_parser("show", help="one kind as TOML (or JSON)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    inf = ks.add_parser("infer", help="a kind definition inferred from a CSV file, to edit",
                        description="Reads the header and the value ranges of a CSV file and prints "
                                    "a [kinds.<name>] table for the settings file: one signal per "
                                    "numeric column, valid ranges around what the file holds, "
                                    "guessed units and roles, suggested alarm limits as comments. "
                                    "Check and edit it before use.")
    inf.add_argument("--csv", required=True, metavar="FILE")
    inf.add_argument("--name", help="the kind's name (default: from the file name)")
    inf.add_argument("--sep", help="column separator (default: guessed, ',' or ';')")
    inf.add_argument("--rows", type=int, default=200_000, help="rows read at most (default 200,000)")
    inf.set_defaults(func=cmd_infer)
    p.set_defaults(func=cmd_list, json=False)


def _kinds(args) -> dict[str, Kind]:
    try:
        return settings_from(args).kinds
    except SettingsError as exc:
        raise CommandError(str(exc), 2) from exc


def cmd_list(args: argparse.Namespace) -> int:
    kinds = _kinds(args)
    if getattr(args, "json", False):
        print(json.dumps([k.as_dict() for k in kinds.values()], ensure_ascii=False))
        return 0
    for k in kinds.values():
        sig = ", ".join(f"{s.name} [{s.unit}]" if s.unit else s.name for s in k.signals)
        print(f"{k.name:22s} {k.source:10s} {sig}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    kinds = _kinds(args)
    if args.name not in kinds:
        raise CommandError(f"unknown kind {args.name!r}; known: {', '.join(kinds)}", 2)
    k = kinds[args.name]
    print(json.dumps(k.as_dict(), ensure_ascii=False, indent=1) if args.json else kind_to_toml(k), end="")
    return 0


def _signal_name(column: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", column.strip()).strip("_")
    if not name or not name[0].isalpha():
        name = f"s_{name}"
    return name[:64]


def _round(v: float) -> float:
    if v == 0 or not np.isfinite(v):
        return 0.0
    mag = 10 ** (np.floor(np.log10(abs(v))) - 1)
    return float(np.round(v / mag) * mag)


def infer_kind(df: pd.DataFrame, name: str) -> tuple[Kind, dict[str, str]]:
    """A kind from a frame's numeric columns, and remarks per signal (source column, limits)."""
    signals, notes = [], {}
    for col in df.columns:
        if str(col).strip().lower() in _NOT_SIGNALS:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        finite = values[np.isfinite(values)]
        if len(finite) == 0 or len(finite) < 0.5 * values.notna().sum() or values.notna().sum() == 0:
            notes[str(col)] = "not numeric: left out"
            continue
        sname = _signal_name(str(col))
        low = sname.lower()
        unit = next((u for w, u in _UNIT_GUESS if w in low), "")
        role = "state" if any(w in low for w in _STATE_WORDS) else "measured"
        lo, hi = float(finite.min()), float(finite.max())
        # `valid` is what a working sensor can read at all (validation refuses the rest), so it
        # must hold every fault the file does not show: the next power of ten above the largest
        # magnitude, one more for headroom; zero as the floor of a never-negative signal.
        top = float(10.0 ** (np.floor(np.log10(max(abs(lo), abs(hi), 1e-9))) + 2))
        valid = (0.0 if lo >= 0 else -top, top)
        if unit == "°C" and lo >= ABSOLUTE_ZERO_C:
            # a temperature the file never shows below zero still can be (a cold start in
            # winter): only absolute zero bounds it, and a -999 "no value" sentinel stays out
            valid = (ABSOLUTE_ZERO_C, top)
        q = finite.quantile([0.001, 0.999]).to_numpy()
        signals.append(Signal(sname, unit, role=role, valid=valid,
                              description=f"column {col!r}" if sname != col else ""))
        notes[sname] = (f"seen {lo:.6g} … {hi:.6g}; 0.1 %–99.9 % {q[0]:.6g} … {q[1]:.6g}"
                        + ("" if role == "state" else
                           f"; a high limit might start near {_round(q[1] + 0.1 * (hi - lo)):g}"))
    if not signals:
        raise CommandError("no numeric column to make a signal of", 2)
    if not any(s.measured for s in signals):
        signals[0] = Signal(signals[0].name, signals[0].unit, "measured", signals[0].valid,
                            description=signals[0].description)
    return Kind(name, tuple(signals), description="inferred by `twin kinds infer`; check units, "
                                                  "roles, ranges and add alarm limits"), notes


def cmd_infer(args: argparse.Namespace) -> int:
    try:
        with open(args.csv, encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline()
    except OSError as exc:
        raise CommandError(f"cannot read {args.csv}: {exc.strerror or exc}", 2) from exc
    sep = args.sep or (";" if header.count(";") > header.count(",") else ",")
    try:
        df = pd.read_csv(args.csv, sep=sep, nrows=args.rows, encoding="utf-8-sig",
                         encoding_errors="replace", on_bad_lines="skip", dtype=str)
    except (ValueError, pd.errors.ParserError) as exc:
        raise CommandError(f"cannot read {args.csv} as CSV: {exc}", 2) from exc
    parts = args.csv.replace("\\", "/").rsplit("/", 2)
    stem = re.sub(r"\.csv$", "", parts[-1])
    if stem.isdigit() and len(parts) > 1:  # valve1/3.csv → valve1-3
        stem = f"{parts[-2]}-{stem}"
    name = args.name or _signal_name(stem).lower()
    name = re.sub(r"_+", "-", name).strip("-") or "my-kind"
    try:
        kind, notes = infer_kind(df, name)
    except KindError as exc:
        raise CommandError(str(exc), 2) from exc
    print(f"# inferred from {args.csv} ({len(df)} rows read); check units, roles and ranges,")
    print("# add alarm limits (high = [warning, critical], low = [...]), then put this in twin.toml")
    for line in kind_to_toml(kind).splitlines():
        print(line)
        m = re.match(r'\[kinds\."[^"]+"\.signals\.(\w+)\]', line)
        if m and m.group(1) in notes:
            print(f"# {notes[m.group(1)]}")
    skipped = [c for c, n in notes.items() if n.endswith("left out")]
    if skipped:
        print(f"# left out (not numeric): {', '.join(skipped)}")
    return 0
