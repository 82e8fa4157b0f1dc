"""CSV import and export in twinlib's format (``timestamp, asset_id, temperature, …``).

Reading goes row by row through Python's csv module so that a malformed line (too few or too
many fields) is reported with its line number instead of stopping the whole file.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import SENSORS
from ..store import OPTIONAL_COLUMNS
from ..timeutil import format_ts_array
from .validate import Reject, ValidationError, ValidationResult, validate_frame

__all__ = ["read_csv", "write_csv", "EXPORT_COLUMNS"]

EXPORT_COLUMNS = ("timestamp", "asset_id", *SENSORS, *OPTIONAL_COLUMNS)


def read_csv(source: str | os.PathLike | io.TextIOBase, *, required: tuple[str, ...] = SENSORS,
             default_asset: str | None = None, delimiter: str | None = None) -> ValidationResult:
    """Read and validate a readings CSV; bad lines come back as rejects, never as an exception.

    Raises :class:`ValidationError` only when the file as a whole is unusable (no header, a
    required column missing). The delimiter is sniffed (``,`` or ``;``) unless given.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ValidationError(f"{path}: no such file")
        fh = path.open(newline="", encoding="utf-8-sig")
        close = True
    else:
        fh, close = source, False
    try:
        first = fh.readline()
        if not first.strip():
            raise ValidationError("the CSV file is empty (no header line)")
        if delimiter is None:
            delimiter = ";" if first.count(";") > first.count(",") else ","
        header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
        width = len(header)
        rows: list[list[str]] = []
        lines: list[int] = []
        rejects: list[Reject] = []
        reader = csv.reader(fh, delimiter=delimiter)
        last = 1
        try:
            for rec in reader:
                line = reader.line_num + 1  # the header was line 1
                last = line
                if not rec or all(not f.strip() for f in rec):
                    continue  # blank lines are not readings
                if len(rec) != width:
                    rejects.append(Reject(line, f"expected {width} fields, found {len(rec)}",
                                          dict(enumerate(rec))))
                    continue
                rows.append(rec)
                lines.append(line)
        except csv.Error as exc:
            rejects.append(Reject(last + 1, f"unreadable CSV from here on: {exc}"))
    finally:
        if close:
            fh.close()
    df = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header)
    kwargs = {"default_asset": default_asset} if default_asset else {}
    result = validate_frame(df, required=required, lines=np.asarray(lines, dtype=np.int64), **kwargs)
    result.rejects = sorted(rejects + result.rejects, key=lambda r: r.line)
    result.total += len(rejects)
    return result


def write_csv(df: pd.DataFrame, dest: str | os.PathLike | io.TextIOBase, header: bool = True) -> int:
    """Write readings (from the simulator or ``store.window``) in twinlib's CSV format.

    ``header=False`` appends a further chunk to an open file.
    """
    out = pd.DataFrame()
    ts = df["ts"].to_numpy(dtype=np.int64) if "ts" in df.columns else \
        df["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    out["timestamp"] = format_ts_array(ts)
    for c in EXPORT_COLUMNS[1:]:
        if c in df.columns:
            out[c] = df[c].to_numpy()
    if isinstance(dest, (str, os.PathLike)):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(dest, index=False, header=header, lineterminator="\n")
    return len(out)
