"""CSV import and export in twinlib's format (``timestamp, asset_id, temperature, …``).

Reading is streamed: :class:`CsvReader` hands out validated chunks of ``chunk_rows`` lines, so
memory stays bounded whatever the file's size. Every physical line is looked at on its own: a
line with too few or too many fields, a stray quote, bytes that are not UTF-8 or more than
``MAX_LINE_BYTES`` is rejected with its line number and the next line is read as usual (a
field never spans lines, so one bad quote cannot swallow the rest of the file).
"""
from __future__ import annotations

import csv
import gc
import io
import os
from operator import methodcaller
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from ..config import PHYSICAL_LIMITS, SENSORS
from ..kinds import Kind
from ..store import OPTIONAL_COLUMNS
from ..timeutil import format_ts_array
from .validate import (
    STATE_COLUMNS,
    Reject,
    ValidationError,
    ValidationResult,
    check_asset_id,
    check_columns,
    kind_checks,
    validate_frame,
)

__all__ = ["read_csv", "write_csv", "export_columns", "CsvReader", "EXPORT_COLUMNS", "MAX_LINE_BYTES",
           "DEFAULT_CHUNK_BYTES"]

EXPORT_COLUMNS = ("timestamp", "asset_id", *SENSORS, *OPTIONAL_COLUMNS)
#: A longer line is rejected (and skipped without being held in memory).
MAX_LINE_BYTES = 64 * 1024
#: Bytes of lines validated (and stored) at a time by a streamed import (~50,000 lines).
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024


class CsvReader:
    """A readings CSV as a stream of validated chunks (:class:`ValidationResult` each).

    Opening reads and checks the header (:class:`ValidationError` if the file as a whole is
    unusable: empty, undecodable header, a required column missing, two time columns). Then
    iterate: each chunk holds the clean rows and the rejects of about ``chunk_bytes`` of lines.
    ``lines`` counts the physical lines read so far (header and blank lines included),
    ``blank`` the blank ones, ``data_lines`` the others. ``rewind()`` starts over (two-pass
    strict imports).
    """

    def __init__(self, source: str | os.PathLike | io.IOBase, *,
                 required: tuple[str, ...] | None = None,
                 limits: Mapping[str, tuple[float, float]] | None = None,
                 default_asset: str | None = None, delimiter: str | None = None,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, window: tuple[int, int] | None = None,
                 kind: Kind | None = None):
        if default_asset is not None:
            check_asset_id(default_asset, "--asset")
        self.kind, self.state = kind, None
        if kind is not None:  # the kind's signals, matched in any case; none required
            k_limits, self.state = kind_checks(kind)
            limits = k_limits if limits is None else limits
            required = () if required is None else required
        required = SENSORS if required is None else required
        limits = PHYSICAL_LIMITS if limits is None else limits
        self.required, self.limits, self.window = tuple(required), limits, window
        self.default_asset = default_asset
        self.chunk_bytes = max(1024, int(chunk_bytes))
        self.path: Path | None = None
        if isinstance(source, (str, os.PathLike)):
            self.path = Path(source)
            if not self.path.exists():
                raise ValidationError(f"{self.path}: no such file")
            self._fh = self.path.open("rb")
            self._close = True
        else:
            self._fh, self._close = source, False
        self._start = self._fh.tell() if self._fh.seekable() else None
        self._delimiter = delimiter
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    # -- header ------------------------------------------------------------------------------
    def _read_header(self) -> None:
        self.lines = self.blank = self.data_lines = 0
        first = self._fh.readline(MAX_LINE_BYTES + 1)
        self._nl = b"\n" if isinstance(first, bytes) else "\n"
        self._tail = first[:0]
        self._skip = self._eof = False
        if isinstance(first, bytes):
            try:
                first = first.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError(f"the header line is not valid UTF-8 ({exc.reason} at byte "
                                      f"{exc.start + 1})") from None
        first = first.lstrip("\ufeff")
        if not first.strip():
            raise ValidationError("the CSV file is empty (no header line)")
        if len(first) > MAX_LINE_BYTES:
            raise ValidationError(f"the header line is longer than {MAX_LINE_BYTES} bytes")
        self.lines = 1
        first = first.rstrip("\r\n")
        delim = self._delimiter
        if delim is None:
            delim = ";" if first.count(";") > first.count(",") else ","
        self.delimiter = delim
        try:
            header = next(csv.reader([first], delimiter=delim, strict=True))
        except csv.Error as exc:
            raise ValidationError(f"the header line is not valid CSV ({exc})") from None
        self.header = [h.strip() for h in header]
        check_columns(self.header, self.required, (*self.limits, *(self.state or ())))

    def rewind(self) -> None:
        """Start again from the first line (needs a seekable source)."""
        if self._start is None:
            raise ValidationError("cannot read this input twice (not seekable)")
        self._fh.seek(self._start)
        self._read_header()

    # -- blocks of whole lines ---------------------------------------------------------------
    def _block(self):
        """(complete lines joined, without the last newline; a too-long line follows) or None.

        Memory is bounded by ``chunk_bytes`` plus one line of at most ``MAX_LINE_BYTES``: a
        longer line is skipped as it streams by, never held.
        """
        nl = self._nl
        while True:
            data = self._fh.read(self.chunk_bytes)
            if not data:
                self._eof = True
                tail, self._tail = self._tail, self._tail[:0]
                if self._skip:
                    self._skip = False
                    return None
                return (tail, False) if tail else None
            if self._skip:
                cut = data.find(nl)
                if cut < 0:
                    continue
                data, self._skip = data[cut + 1:], False
            data = self._tail + data if self._tail else data
            cut = data.rfind(nl)
            if cut < 0:
                if len(data) > MAX_LINE_BYTES:
                    self._tail, self._skip = data[:0], True
                    return None, True
                self._tail = data
                continue
            self._tail = data[cut + 1:]
            too_long = len(self._tail) > MAX_LINE_BYTES
            if too_long:
                self._tail, self._skip = data[:0], True
            return data[:cut], too_long

    def _parse(self, data, first_no: int) -> tuple[list[list[str]], list[int], list[Reject]]:
        """Fields of each good line of a block, their line numbers, and the bad lines."""
        delim, width, nl = self.delimiter, len(self.header), self._nl
        rejects: list[Reject] = []
        dead: set[int] = set()
        if isinstance(data, bytes):
            try:
                text = data.decode("utf-8")
                lines = text.split("\n")
            except UnicodeDecodeError:
                lines = []
                for k, raw in enumerate(data.split(nl)):
                    try:
                        lines.append(raw.decode("utf-8"))
                    except UnicodeDecodeError as exc:
                        lines.append("")
                        dead.add(k)
                        rejects.append(Reject(first_no + k, f"not valid UTF-8 (byte "
                                                            f"0x{raw[exc.start]:02x} at column "
                                                            f"{exc.start + 1})",
                                              {"raw_line": _text(raw[:200])}, "encoding"))
                text = None
        else:
            text = data
            lines = text.split("\n")
        if text is None or "\r" in text:
            lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
        if lines and max(map(len, lines)) > MAX_LINE_BYTES:
            for k in [k for k, ln in enumerate(lines) if len(ln) > MAX_LINE_BYTES]:
                dead.add(k)
                rejects.append(Reject(first_no + k, f"line longer than {MAX_LINE_BYTES} bytes",
                                      {"raw_line": lines[k][:200]}, "line_too_long"))
                lines[k] = ""
        # Lines with a quote (or a stray carriage return or NUL) go through the csv module, one
        # line at a time; the rest is split by pandas' C parser.
        quoted: list[int] = []
        if text is None or '"' in text or "\r" in text or "\0" in text:
            quoted = [k for k, ln in enumerate(lines) if '"' in ln or "\r" in ln or "\0" in ln]
        fields: dict[int, list[str]] = {}
        for k in quoted:
            try:
                fields[k] = next(csv.reader([lines[k]], delimiter=delim, strict=True), [""])
            except csv.Error as exc:
                dead.add(k)
                rejects.append(Reject(first_no + k, f"not a valid CSV line ({exc}): a quote "
                                                    f"that does not close, or a line break "
                                                    f"inside a field?",
                                      {"raw_line": lines[k][:200]}, "quote"))
        n = len(lines)
        widths = np.fromiter(map(methodcaller("count", delim), lines), dtype=np.int64, count=n) + 1
        for k, rec in fields.items():
            widths[k] = len(rec)
        odd = set(np.flatnonzero(widths != width).tolist())
        odd.update(k for k, ln in enumerate(lines) if not ln or ln[0] == delim)
        blank_chars = delim + " \t"
        for k in sorted(odd - dead):
            if not lines[k].strip(blank_chars):
                self.blank += 1
                dead.add(k)  # blank lines are not readings
            elif widths[k] != width:
                dead.add(k)
                rejects.append(Reject(first_no + k, f"expected {width} fields, found {widths[k]}",
                                      {"raw_line": lines[k][:200]}, "field_count"))
        keep = [k for k in range(n) if k not in dead] if dead else range(n)
        numbers = [first_no + k for k in keep]
        if any(k in fields for k in keep):  # a quoted field: use the csv module's fields
            return [fields[k] if k in fields else lines[k].split(delim) for k in keep], \
                numbers, rejects
        return [lines[k] for k in keep] if dead else lines, numbers, rejects

    def _frame(self, rows) -> pd.DataFrame:
        """The good lines as a frame: text lines go through pandas' C parser (fast)."""
        if not rows:
            return pd.DataFrame({h: pd.Series([], dtype=object) for h in self.header})
        if isinstance(rows[0], list):
            return pd.DataFrame(rows, columns=self.header, dtype=object)
        numeric = {*self.limits, *self.required, *STATE_COLUMNS}
        text_cols = {h: str for h in self.header if h.strip().lower() not in numeric}
        df = pd.read_csv(io.StringIO("\n".join(rows)), header=None, names=self.header,
                         sep=self.delimiter, dtype=text_cols, keep_default_na=False,
                         na_values=[""], quoting=csv.QUOTE_NONE, skip_blank_lines=False,
                         engine="c")
        if len(df) != len(rows):  # never seen; the safe way if the C parser disagrees
            return pd.DataFrame([r.split(self.delimiter) for r in rows], columns=self.header,
                                dtype=object)
        # A NaN in a number column is either an empty cell (missing) or text such as "NaN":
        # give the latter back as text, so validation says "not a finite number".
        for j, h in enumerate(self.header):
            col = df[h]
            if h in text_cols or not pd.api.types.is_float_dtype(col.dtype):
                continue
            holes = np.flatnonzero(np.isnan(col.to_numpy()))
            if not len(holes):
                continue
            cells = [rows[k].split(self.delimiter)[j] for k in holes]
            if any(c.strip() for c in cells):
                obj = col.to_numpy(dtype=object).copy()
                obj[holes] = [c if c.strip() else None for c in cells]
                df[h] = pd.Series(obj, dtype=object)
        return df

    def __iter__(self) -> Iterator[ValidationResult]:
        while not self._eof:
            block = self._block()
            if block is None:
                continue
            data, too_long = block
            rows, numbers, rejects = [], [], []
            if data is not None:
                # Millions of small lists: the cyclic GC would rescan them again and again
                # (they hold no cycles), doubling the cost of reading.
                was_enabled = gc.isenabled()
                gc.disable()
                try:
                    first_no = self.lines + 1
                    rows, numbers, rejects = self._parse(data, first_no)
                    self.lines += data.count(self._nl) + 1
                finally:
                    if was_enabled:
                        gc.enable()
            if too_long:
                self.lines += 1
                rejects.append(Reject(self.lines, f"line longer than {MAX_LINE_BYTES} bytes "
                                                  f"(skipped)", {}, "line_too_long"))
            if not rows and not rejects:
                continue
            df = self._frame(rows)
            result = validate_frame(df, required=self.required, limits=self.limits,
                                    default_asset=self.default_asset, window=self.window,
                                    lines=np.asarray(numbers, dtype=np.int64),
                                    state=self.state, kind=self.kind)
            if rejects:
                result.rejects = sorted(rejects + result.rejects, key=lambda r: r.line)
            result.total += len(rejects)
            self.data_lines += result.total
            yield result

    def close(self) -> None:
        if self._close:
            self._fh.close()

    def __enter__(self) -> "CsvReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _text(raw) -> str:
    return raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw


def read_csv(source: str | os.PathLike | io.IOBase, *, required: tuple[str, ...] = SENSORS,
             default_asset: str | None = None, delimiter: str | None = None,
             limits: Mapping[str, tuple[float, float]] = PHYSICAL_LIMITS,
             window: tuple[int, int] | None = None) -> ValidationResult:
    """Read and validate a whole readings CSV; bad lines come back as rejects, never as an exception.

    Raises :class:`ValidationError` only when the file as a whole is unusable (no header, a
    required column missing). The delimiter is sniffed (``,`` or ``;``) unless given. For large
    files use :class:`CsvReader` (or ``twinlib.ingest.ingest_csv``), which streams.
    """
    with CsvReader(source, required=required, default_asset=default_asset, delimiter=delimiter,
                   limits=limits, window=window) as reader:
        parts = list(reader)
        if not parts:
            df = pd.DataFrame({h: pd.Series([], dtype=object) for h in reader.header})
            return validate_frame(df, required=required, limits=limits,
                                  default_asset=default_asset, window=window)
    if len(parts) == 1:
        return parts[0]
    return ValidationResult(clean=pd.concat([p.clean for p in parts], ignore_index=True),
                            rejects=[r for p in parts for r in p.rejects],
                            notes=[n for p in parts for n in p.notes],
                            total=sum(p.total for p in parts))


def export_columns(signals) -> list[str]:
    """The CSV columns for readings of these signals: ``timestamp, asset_id``, the pump's columns
    in their first-release order, any other signal by name, ``label`` (after every signal)."""
    signals = list(dict.fromkeys(signals))
    pump = [c for c in EXPORT_COLUMNS[2:] if c != "label"]
    if all(s in pump for s in signals):  # pumps only: exactly the first release's columns
        return list(EXPORT_COLUMNS)
    return ["timestamp", "asset_id", *[c for c in pump if c in signals],
            *[s for s in signals if s not in pump], "label"]


def write_csv(df: pd.DataFrame, dest: str | os.PathLike | io.TextIOBase, header: bool = True,
              columns: list[str] | None = None) -> int:
    """Write readings (from the simulator or ``store.window``) in twinlib's CSV format.

    ``columns`` fixes the columns (see :func:`export_columns`; absent ones are written empty),
    default: every column ``df`` has. ``header=False`` appends a further chunk to an open file.
    """
    if columns is None:
        columns = export_columns([c for c in df.columns
                                  if c not in ("id", "ts", "timestamp", "asset_id", "label", "kind")])
    out = pd.DataFrame()
    ts = df["ts"].to_numpy(dtype=np.int64) if "ts" in df.columns else \
        df["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    out["timestamp"] = format_ts_array(ts)
    for c in columns[1:]:
        out[c] = df[c].to_numpy() if c in df.columns else np.full(len(df), None, dtype=object)
    if isinstance(dest, (str, os.PathLike)):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(dest, index=False, header=header, lineterminator="\n")
    return len(out)
