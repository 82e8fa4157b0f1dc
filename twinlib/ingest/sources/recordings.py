"""Read recorded sensor files — twinlib's own CSV, SKAB and NAB — as twinlib-shaped chunks.

Each format is mapped onto a kind's signals (`twinlib.kinds`):

- twinlib CSV (`twin export`) of pumps: the columns already have these names (`ts` in ms also
  works);
- SKAB (`;`-separated, `datetime` column, local time taken as UTC): all eight channels, as the
  `skab-testbed` kind (`Volume Flow RateRMS` → `Volume_Flow_RateRMS`); the label columns
  `anomaly` and `changepoint` are the benchmark's answers, not readings;
- NAB (`timestamp,value`): `value` → `temperature` of the one-signal `machine-temperature` kind;
- any CSV of a given kind (`kind=`, format `csv`; `,` or `;` separated): one time column
  (`timestamp`, `datetime`, `time` or `ts` in epoch ms), the kind's signals matched by name in
  any case and spelling of separators, optional `asset_id` and `label`. Every measured signal of
  the kind must have a column; a column that is none of these is refused (never dropped).

Files are read in chunks, so a recording of any length replays in bounded memory.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd

from twinlib.config import SENSORS

__all__ = ["FORMATS", "Recording", "sniff_format", "open_recording", "timestamps_ms"]

FORMATS = ("auto", "twinlib", "skab", "nab", "csv")

#: SKAB's columns onto the ``skab-testbed`` kind: all eight channels, one renamed (no spaces).
_SKAB_MAP = {"datetime": "timestamp", "Accelerometer1RMS": "Accelerometer1RMS",
             "Accelerometer2RMS": "Accelerometer2RMS", "Current": "Current", "Pressure": "Pressure",
             "Temperature": "Temperature", "Thermocouple": "Thermocouple", "Voltage": "Voltage",
             "Volume Flow RateRMS": "Volume_Flow_RateRMS"}
#: NAB's one channel onto the ``machine-temperature`` kind.
_NAB_MAP = {"timestamp": "timestamp", "value": "temperature"}
#: The kind each recording format's readings are.
FORMAT_KINDS = {"twinlib": "pump", "skab": "skab-testbed", "nab": "machine-temperature"}
_TWIN_OPTIONAL = ("label", "load", "speed", "ambient")


class Recording(NamedTuple):
    """An opened recording: its format, the asset it describes, and a chunk iterator."""

    fmt: str
    asset_id: str | None  # None: the file has an asset_id column (twinlib CSV)
    required: tuple[str, ...]
    chunks: Iterator[pd.DataFrame]
    kind: str = "pump"    # the kind (twinlib.kinds) its readings are


def sniff_format(path: str | Path) -> str:
    """Tell twinlib CSV, SKAB and NAB apart from the header line."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline().strip()
    if ";" in header and "datetime" in header.split(";"):
        return "skab"
    fields = [f.strip().strip('"') for f in header.split(",")]
    if fields == ["timestamp", "value"]:
        return "nab"
    if "asset_id" in fields and ("timestamp" in fields or "ts" in fields):
        return "twinlib"
    raise ValueError(f"{path}: cannot tell the format from the header {header[:120]!r}; "
                     f"expected twinlib CSV (timestamp,asset_id,…), SKAB (datetime;…) or NAB "
                     f"(timestamp,value) — or pass the format explicitly")


def _default_asset(path: Path, fmt: str) -> str:
    stem = path.stem
    if fmt == "skab" and stem.isdigit():  # valve1/3.csv → skab-valve1-3
        stem = f"{path.parent.name}-{stem}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{fmt}-{stem}").strip("-")
    return name[:64]


def open_recording(path: str | Path, fmt: str = "auto", *, asset: str | None = None,
                   chunksize: int = 50_000, kind=None) -> Recording:
    """Open a recording for chunked reading in twinlib columns (see the module docstring).

    ``kind`` (a :class:`~twinlib.kinds.Kind`): the file holds that kind's readings. A SKAB or
    NAB file keeps its own reading when the kind is that format's; any other file (or kind) is
    read as the kind's CSV (format ``csv``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"replay file not found: {path}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    if fmt == "csv" and kind is None:
        raise ValueError("format csv reads a kind's readings: give the kind (--kind)")
    if fmt == "auto" and kind is not None:
        try:
            fmt = sniff_format(path)
        except ValueError:
            fmt = "csv"
        if FORMAT_KINDS.get(fmt) != kind.name:
            fmt = "csv"
    elif fmt == "auto":
        fmt = sniff_format(path)
    elif kind is not None and fmt != "csv" and FORMAT_KINDS[fmt] != kind.name:
        raise ValueError(f"a {fmt} file holds {FORMAT_KINDS[fmt]} readings, not kind "
                         f"{kind.name!r}; use --format csv (or auto) to read it as that kind")
    if fmt == "csv":
        return _open_kind_csv(path, kind, asset, chunksize)
    if fmt == "twinlib":
        reader = pd.read_csv(path, chunksize=chunksize, dtype={"asset_id": str, "label": str})

        def chunks():
            for chunk in reader:
                if asset is not None:
                    chunk["asset_id"] = asset
                keep = [c for c in ("timestamp", "ts", "asset_id", *SENSORS, *_TWIN_OPTIONAL)
                        if c in chunk.columns]
                yield chunk[keep]
        return Recording(fmt, asset, SENSORS, chunks())

    mapping = _SKAB_MAP if fmt == "skab" else _NAB_MAP
    sep = ";" if fmt == "skab" else ","
    asset_id = asset or _default_asset(path, fmt)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = [h.strip().strip('"') for h in fh.readline().strip().split(sep)]
    missing = [c for c in mapping if c not in header]
    if missing:
        raise ValueError(f"{path}: a {fmt.upper()} file needs the column(s) {', '.join(missing)}")
    extra = [c for c in header if c not in mapping and c not in ("anomaly", "changepoint")]
    if extra:  # never dropped silently: SKAB's label columns are the only ones left out
        raise ValueError(f"{path}: column(s) {', '.join(extra)} are not part of the {fmt.upper()} "
                         "format; import the file with `twin store --csv` and a kind that has them")
    reader = pd.read_csv(path, sep=sep, chunksize=chunksize, usecols=list(mapping),
                         dtype={"datetime": str, "timestamp": str})
    names = [v for k, v in mapping.items() if k not in ("datetime", "timestamp")]

    def mapped():
        for chunk in reader:
            out = chunk.rename(columns=mapping)
            out.insert(1, "asset_id", asset_id)
            yield out[["timestamp", "asset_id", *names]]
    return Recording(fmt, asset_id, tuple(names), mapped(), FORMAT_KINDS[fmt])


def _open_kind_csv(path: Path, kind, asset: str | None, chunksize: int) -> Recording:
    """A CSV of ``kind``'s readings, its columns renamed to the kind's spelling."""
    from twinlib.ingest.validate import ValidationError, check_columns

    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        line = fh.readline()
    sep = ";" if line.count(";") > line.count(",") else ","
    header = [h.strip().strip('"') for h in line.strip().split(sep)]
    try:
        cols = check_columns(header, kind.measured, kind.names)
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc} (kind {kind.name!r}: "
                         f"{', '.join(kind.names)})") from None
    time_col = next(c for c in ("timestamp", "datetime", "time", "ts") if c in cols)
    known = {*kind.names, "asset_id", "label", time_col}
    extra = [str(cols[c]) for c in cols if c not in known]
    if extra:  # never dropped silently
        raise ValueError(f"{path}: column(s) {', '.join(extra)} are not signals of kind "
                         f"{kind.name!r} ({', '.join(kind.names)}) nor asset_id/label; declare "
                         f"them in the kind (twin kinds infer --csv {path.name} prints one) or "
                         f"remove them")
    rename = {cols[c]: (("ts" if c == "ts" else "timestamp") if c == time_col else c)
              for c in cols}
    has_asset = "asset_id" in cols
    asset_id = asset if (asset or has_asset) else _default_asset(path, "csv")
    reader = pd.read_csv(path, sep=sep, chunksize=chunksize, skipinitialspace=True,
                         dtype={cols[time_col]: str, **({cols["asset_id"]: str} if has_asset
                                                        else {}),
                                **({cols["label"]: str} if "label" in cols else {})})
    names = [c for c in kind.names if c in cols]

    def chunks():
        for chunk in reader:
            chunk.columns = [h.strip().strip('"') for h in chunk.columns]
            out = chunk.rename(columns=rename)
            if asset_id is not None:
                out["asset_id"] = asset_id
            keep = [c for c in ("timestamp", "ts", "asset_id", *names, "label") if c in out]
            yield out[keep]
    required = tuple(n for n in kind.measured if n in names)
    return Recording("csv", asset_id if not has_asset or asset else None, required, chunks(),
                     kind.name)


def timestamps_ms(frame: pd.DataFrame) -> np.ndarray:
    """Each row's time in ms as float64; NaN where the timestamp cannot be read."""
    if "ts" in frame.columns and "timestamp" not in frame.columns:
        return pd.to_numeric(frame["ts"], errors="coerce").to_numpy(dtype=np.float64)
    col = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(col):
        dt = col
    else:
        # utc=True: naive times are UTC, times with an offset are converted
        dt = pd.to_datetime(col, errors="coerce", format="ISO8601", utc=True)
    if isinstance(dt.dtype, pd.DatetimeTZDtype):
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    out = dt.to_numpy(dtype="datetime64[ms]").astype(np.int64).astype(np.float64)
    out[dt.isna().to_numpy()] = np.nan
    return out
