"""The one validation path every reading passes before it reaches the store.

Nothing is dropped silently: each rejected row comes back with its line number, the reason and
a short reason code (for summaries), and duplicates and out-of-order timestamps are reported.
What is checked is a parameter, not a fixed sensor list: ``limits`` maps each signal column to
its physically possible range (default :data:`twinlib.config.PHYSICAL_LIMITS`), so an asset
kind can bring its own signals.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from ..config import PHYSICAL_LIMITS, SENSORS, TS_EARLIEST, TS_MAX_AHEAD_S
from ..kinds import Kind
from ..store import OPTIONAL_COLUMNS
from ..timeutil import format_ts, now_ms, to_ms

__all__ = ["Reject", "ValidationResult", "ValidationError", "validate_frame", "check_columns",
           "check_asset_id", "plausible_window", "DEFAULT_ASSET", "ASSET_ID_PATTERN",
           "STATE_COLUMNS", "TS_COLUMNS", "REASON_CODES", "kind_checks"]

DEFAULT_ASSET = "asset-01"
#: Asset ids travel in URLs and MQTT topics: letters, digits and ``_ . : -``, 1–64 characters.
ASSET_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: Operating-state columns: numbers without a physical range check.
STATE_COLUMNS = tuple(c for c in OPTIONAL_COLUMNS if c != "label")
#: Names a timestamp column may have (text times), and ``ts`` (epoch milliseconds).
TS_COLUMNS = ("timestamp", "datetime", "time", "ts")
_NOT_FINITE = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}
# Real timestamps only: ISO 8601 dates with an optional time and offset. pandas would also take
# "now", "today", "2026" or "20260210"; a reload of "now" would store a new row every time.
_ISO_TS = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?)?"
                     r" ?(?:Z|[+-]\d{2}(?::?\d{2})?)?")

#: Reason codes: what a summary groups rejects by.
REASON_CODES = ("field_count", "quote", "encoding", "line_too_long", "missing_timestamp",
                "bad_timestamp", "implausible_timestamp", "missing_value", "non_numeric",
                "not_finite", "out_of_range", "missing_asset_id", "bad_asset_id", "bad_label",
                "duplicate", "source")


@dataclass(frozen=True)
class Reject:
    """A row that was not stored: its line (1 = CSV header, data from 2), why, and a code."""

    line: int | None
    reason: str
    raw: dict = field(default_factory=dict, compare=False)
    code: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line is not None else self.reason


@dataclass
class ValidationResult:
    """Rows fit to store (``clean``), rows refused (``rejects``) and remarks (``notes``)."""

    clean: pd.DataFrame
    rejects: list[Reject]
    notes: list[str]
    total: int = 0


class ValidationError(ValueError):
    """A whole input was refused (missing columns, or any bad row under ``strict``)."""

    def __init__(self, message: str, rejects: list[Reject] | None = None):
        super().__init__(message)
        self.rejects = rejects or []


def plausible_window(earliest: str | int = TS_EARLIEST, max_ahead_s: float = TS_MAX_AHEAD_S,
                     now: int | None = None) -> tuple[int, int]:
    """(first, last) epoch ms a reading may carry: ``earliest`` … now + ``max_ahead_s``."""
    lo = to_ms(earliest)
    hi = (now_ms() if now is None else int(now)) + int(float(max_ahead_s) * 1000)
    return lo, hi


def check_asset_id(asset_id: str, what: str = "asset id") -> str:
    """``asset_id`` if it matches :data:`ASSET_ID_PATTERN`, else :class:`ValidationError`."""
    if not isinstance(asset_id, str) or not ASSET_ID_PATTERN.match(asset_id):
        raise ValidationError(f"invalid {what} {str(asset_id)[:80]!r} (letters, digits, _ . : - ; "
                              f"at most 64 characters)")
    return asset_id


def kind_checks(kind: Kind) -> tuple[dict[str, tuple[float, float]], tuple[str, ...]]:
    """What validation checks for a kind: (signals with their valid range, signals without one)."""
    limits = {s.name: s.valid for s in kind.signals if s.valid is not None}
    return limits, tuple(s.name for s in kind.signals if s.valid is None)


def _loose(name) -> str:
    """A column name as matched against a kind's signals: case, surrounding blanks and the
    spelling of separators do not matter (SKAB's header says ``Volume Flow RateRMS``, the
    skab-testbed kind ``Volume_Flow_RateRMS``)."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def check_columns(columns, required: tuple[str, ...] = SENSORS,
                  signals: tuple[str, ...] = ()) -> dict[str, object]:
    """Map lower-cased, stripped names to the given column labels; refuse unusable headers.

    A column matching one of ``signals`` in any case, with blanks or hyphens for underscores, is
    keyed by the signal's own spelling (``temperature`` → ``Temperature``, ``Volume Flow RateRMS``
    → ``Volume_Flow_RateRMS`` for a kind that spells it so). Raises
    :class:`ValidationError` for duplicate names, more than one time column (``timestamp``,
    ``datetime``, ``time``, ``ts``) or a missing required column.
    """
    columns = list(columns)
    spelled = {_loose(s): s for s in signals}
    names = [spelled.get(_loose(c), str(c).strip().lower()) for c in columns]
    doubled = sorted({c for c in names if names.count(c) > 1})
    if doubled:
        raise ValidationError(f"duplicate column(s): {', '.join(doubled)}")
    cols = dict(zip(names, columns))
    times = [c for c in TS_COLUMNS if c in cols]
    if len(times) > 1:
        raise ValidationError(f"more than one time column ({', '.join(times)}): keep one, so it "
                              f"is clear which time a reading has")
    missing = [c for c in required if c not in cols]
    if not times:
        missing.insert(0, "timestamp")
    if missing:
        raise ValidationError(f"missing column(s): {', '.join(missing)} "
                              f"(found: {', '.join(map(str, columns)) or 'none'})")
    return cols


def _factor_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, stripped unique texts): string work is done once per distinct value."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = np.array([str(u).strip() for u in uniques] + [""], dtype=object)
    codes = np.where(codes < 0, len(uniques), codes)
    return codes, texts


def _cell(series: pd.Series, i: int) -> str:
    v = series.iloc[i]
    return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip()


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "…"


def validate_frame(df: pd.DataFrame, *, required: tuple[str, ...] | None = None,
                   limits: Mapping[str, tuple[float, float]] | None = None,
                   state: tuple[str, ...] | None = None, line_offset: int = 2,
                   default_asset: str | None = None, lines: np.ndarray | None = None,
                   window: tuple[int, int] | None = None, kind: Kind | None = None) -> ValidationResult:
    """Check a batch of readings and return what can be stored.

    ``df`` may hold text (a CSV read as strings, JSON values) or typed columns: one time column
    (``timestamp``, ``datetime`` or ``time``: ISO 8601, naive = UTC; or ``ts``: epoch ms), the
    signals of ``limits`` (those in ``required`` must be there; values outside their range are
    refused), optional ``asset_id``, ``label`` and the ``state`` columns.

    Without an ``asset_id`` column every row belongs to ``default_asset`` (else
    :data:`DEFAULT_ASSET`); with one, an empty cell is refused unless ``default_asset`` was
    given explicitly (then it fills the cell and a note says so). Timestamps outside ``window``
    (epoch ms, default :func:`plausible_window`) are refused. Row *i* is reported as line
    ``lines[i]`` when given, else ``i + line_offset``.

    ``kind`` (a :class:`~twinlib.kinds.Kind`) sets ``limits`` and ``state`` from its signals
    (names matched in any case); ``required`` then defaults to none. Columns that are neither a
    reading field nor a signal are named in the notes (never dropped silently).
    """
    n = len(df)
    if kind is not None:
        k_limits, k_state = kind_checks(kind)
        limits = k_limits if limits is None else limits
        state = k_state if state is None else state
        required = () if required is None else required
    limits = PHYSICAL_LIMITS if limits is None else limits
    state = STATE_COLUMNS if state is None else state
    required = SENSORS if required is None else required
    cols = check_columns(df.columns, required, (*limits, *state))
    if default_asset is not None:
        check_asset_id(default_asset, "default asset id")
    lo_ms, hi_ms = plausible_window() if window is None else window
    ts_col = next(cols[a] for a in TS_COLUMNS if a in cols)
    has_ms = ts_col == cols.get("ts")
    line_no = np.asarray(lines, dtype=np.int64) if lines is not None else np.arange(n) + line_offset
    reasons: dict[int, list[tuple[str, str]]] = {}

    def flag(i, code: str, why: str) -> None:
        reasons.setdefault(int(i), []).append((code, why))

    # timestamps: parsed in one vectorised call; only the failures are looked at one by one
    raw_ts = df[ts_col]
    if has_ms:
        ms = pd.to_numeric(raw_ts, errors="coerce").to_numpy(dtype=float)
        nat = ~np.isfinite(ms) | (np.abs(ms) > 2**62)
        for i in np.flatnonzero(nat):
            text = _cell(raw_ts, i)
            flag(i, "missing_timestamp" if not text else "bad_timestamp",
                 "missing timestamp" if not text else
                 f"unparseable ts {_short(text)!r} (epoch milliseconds expected)")
        ts_ms = np.where(nat, 0, np.round(np.where(nat, 0, ms))).astype(np.int64)
    elif pd.api.types.is_datetime64_any_dtype(raw_ts.dtype):
        parsed = raw_ts
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        nat = parsed.isna().to_numpy()
        for i in np.flatnonzero(nat):
            flag(i, "missing_timestamp", "missing timestamp")
        ts_ms = np.where(nat, 0, parsed.to_numpy(dtype="datetime64[ms]").astype(np.int64))
    else:
        ts_ms, nat, tx = _parse_text_times(raw_ts)
        for i in np.flatnonzero(nat):
            flag(i, "missing_timestamp" if not tx[i] else "bad_timestamp",
                 "missing timestamp" if not tx[i] else
                 f"unparseable timestamp {_short(tx[i])!r} (use YYYY-MM-DD HH:MM:SS[.fff], UTC "
                 f"or with an offset)")
    outside = ~nat & ((ts_ms < lo_ms) | (ts_ms > hi_ms))
    for i in np.flatnonzero(outside):
        flag(i, "implausible_timestamp",
             f"timestamp {_ts_text(ts_ms[i])} outside the plausible range {format_ts(lo_ms)} … "
             f"{format_ts(hi_ms)} (settings: [ingest] earliest, max_ahead_s)")

    # numbers
    signals = tuple(dict.fromkeys((*limits, *required)))
    values: dict[str, np.ndarray] = {}
    for name in (*signals, *[s for s in state if s not in signals]):
        if name not in cols:
            continue
        raw = df[cols[name]]
        typed = pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype)
        num = raw.to_numpy(dtype=float).copy() if typed else _parse_numbers(raw)
        optional = name not in required
        for i in np.flatnonzero(~np.isfinite(num)):
            if typed:  # a typed NaN is an absent value (JSON null); an infinity is not finite
                text = "" if np.isnan(num[i]) else str(num[i])
            else:
                text = _cell(raw, i)
            if not text:
                if not optional:
                    flag(i, "missing_value", f"missing {name}")
                num[i] = np.nan
            elif text.lower() in _NOT_FINITE:
                flag(i, "not_finite", f"{name} is not a finite number ({_short(text)!r})")
            else:
                flag(i, "non_numeric", f"non-numeric {name} {_short(text)!r}")
        if name in limits:
            lo, hi = limits[name]
            with np.errstate(invalid="ignore"):
                out = np.isfinite(num) & ((num < lo) | (num > hi))
            for i in np.flatnonzero(out):
                flag(i, "out_of_range",
                     f"{name} {num[i]:g} outside the physically possible range [{lo:g}, {hi:g}]")
        values[name] = num

    # assets and labels: string checks once per distinct value
    notes: list[str] = []
    if "asset_id" in cols:
        codes, texts = _factor_text(df[cols["asset_id"]])
        empty = np.array([not t for t in texts])
        if default_asset is not None:
            filled = int(empty[codes].sum())
            if filled:
                notes.append(f"{filled} row(s) without asset_id assigned to {default_asset}")
            texts = np.array([t or default_asset for t in texts], dtype=object)
            empty[:] = False
        ok_ids = np.array([bool(ASSET_ID_PATTERN.match(t)) for t in texts]) | empty
        asset_ids = texts[codes]
        for i in np.flatnonzero(empty[codes]):
            flag(i, "missing_asset_id", "missing asset_id (an empty cell is not an asset; "
                                        "pass --asset to fill empty cells on purpose)")
        for i in np.flatnonzero(~ok_ids[codes]):
            flag(i, "bad_asset_id", f"invalid asset_id {_short(asset_ids[i])!r} (letters, digits, "
                                    f"_ . : - ; at most 64 characters)")
    else:
        asset_ids = np.full(n, default_asset or DEFAULT_ASSET, dtype=object)
    if "label" in cols:
        codes, texts = _factor_text(df[cols["label"]])
        too_long = np.array([len(t) > 64 for t in texts])
        labels = np.array([t or None for t in texts], dtype=object)[codes]
        for i in np.flatnonzero(too_long[codes]):
            flag(i, "bad_label", "label longer than 64 characters")
    else:
        labels = np.full(n, None, dtype=object)

    # duplicates inside the batch: the first copy is kept, later ones are reported
    bad = np.zeros(n, dtype=bool)
    bad[list(reasons)] = True
    ok_idx = np.flatnonzero(~bad)
    key = pd.DataFrame({"a": asset_ids[ok_idx], "t": ts_ms[ok_idx]})
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        first = key.drop_duplicates(keep="first").reset_index().set_index(["a", "t"])["index"]
        for j in np.flatnonzero(dup):
            i = ok_idx[j]
            orig = ok_idx[first.loc[(asset_ids[i], ts_ms[i])]]
            flag(i, "duplicate", f"duplicate of line {line_no[orig]} (same asset_id and timestamp)")
            bad[i] = True

    raw_cols = [(str(c), df[c].to_numpy()) for c in df.columns]
    rejects = [Reject(int(line_no[i]), "; ".join(why for _, why in reasons[i]),
                      _row(raw_cols, i), reasons[i][0][0]) for i in sorted(reasons)]
    keep = ~bad
    clean = pd.DataFrame({"asset_id": asset_ids[keep], "ts": ts_ms[keep]})
    for name in (*signals, *state):
        if name in values:
            clean[name] = values[name][keep]
        elif name in signals:
            clean[name] = np.nan
    clean["label"] = labels[keep]
    clean.insert(2, "timestamp", clean["ts"].to_numpy().astype("datetime64[ms]"))
    known = {*limits, *state, *required, *TS_COLUMNS, "asset_id", "label", "kind", "location"}
    unknown = [str(cols[c]) for c in cols if c not in known]
    if unknown:
        what = f"signals of kind {kind.name!r}" if kind is not None else "reading columns"
        notes.append(f"column(s) {', '.join(unknown)} are not {what}: not stored "
                     f"(declare them in the asset's kind to keep them)")
    # out of order: stored by timestamp all the same; say so
    late = int((clean.groupby("asset_id", sort=False)["ts"].diff() < 0).sum())
    if late:
        notes.append(f"{late} row(s) arrived out of timestamp order; stored by timestamp")
    return ValidationResult(clean=clean, rejects=rejects, notes=notes, total=n)


def _parse_text_times(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epoch ms, unparseable mask, texts) of a column of text times.

    Fast path for the common file: every value looks like ``YYYY-MM-DD…`` without an offset and
    numpy parses the lot in one call. Anything else takes the careful path: each value must be
    a real ISO 8601 time (regex), then pandas parses it (offsets converted to UTC).
    """
    values = raw.to_numpy(dtype=object)
    n = len(values)
    if n and all(type(v) is str for v in values[:1]):
        try:
            arr = np.array(values, dtype=str)
            if arr.dtype.itemsize >= 40:  # at least 10 characters: YYYY-MM-DD
                code = arr.view(np.uint32).reshape(n, -1)
                digits = code[:, [0, 1, 2, 3, 5, 6, 8, 9]]
                ok = bool(((digits >= 48) & (digits <= 57)).all()
                          and (code[:, 4] == 45).all() and (code[:, 7] == 45).all())
            else:
                ok = False
            if ok:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # an offset: numpy would only warn
                    ms = np.array(arr, dtype="datetime64[ms]")
                nat = np.isnat(ms)
                if not nat.any():
                    return ms.astype(np.int64), nat, values
        except (ValueError, TypeError, Warning):
            pass
    text = pd.Series(values, dtype=object).where(pd.notna(values), "").astype(str).str.strip()
    real = text.str.fullmatch(_ISO_TS).to_numpy(dtype=bool)
    parsed = pd.to_datetime(text.where(real, None), errors="coerce", utc=True,
                            format="ISO8601").dt.tz_localize(None)
    nat = parsed.isna().to_numpy()
    ts_ms = np.where(nat, 0, parsed.to_numpy(dtype="datetime64[ms]").astype(np.int64))
    return ts_ms, nat, text.to_numpy(dtype=object)


def _parse_numbers(raw: pd.Series) -> np.ndarray:
    """Text (or mixed JSON values) to float; what is not a number becomes NaN."""
    values = raw.to_numpy(dtype=object)
    try:
        return np.array(values, dtype=float)  # one call for a clean column
    except (ValueError, TypeError, OverflowError):
        return pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float).copy()


def _ts_text(ms: int) -> str:
    try:
        return format_ts(int(ms))
    except (OverflowError, OSError, ValueError):
        return f"{int(ms)} ms"


def _row(raw_cols: list[tuple[str, np.ndarray]], i: int) -> dict:
    out = {}
    for name, arr in raw_cols:
        v = arr[i]
        if isinstance(v, float) and v != v:
            v = None
        elif isinstance(v, np.generic):
            v = v.item()
        out[name] = v
    return out
