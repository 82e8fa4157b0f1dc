"""The one validation path every reading passes before it reaches the store.

Nothing is dropped silently: each rejected row comes back with its line number and the reason,
and duplicates and out-of-order timestamps are reported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import PHYSICAL_LIMITS, SENSORS
from ..kinds import Kind

__all__ = ["Reject", "ValidationResult", "ValidationError", "validate_frame", "DEFAULT_ASSET",
           "ASSET_ID_PATTERN"]

DEFAULT_ASSET = "asset-01"
#: Asset ids travel in URLs and MQTT topics: letters, digits and ``_ . : -``, 1–64 characters.
ASSET_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_NUMERIC = (*SENSORS, "load", "speed", "ambient")
_NOT_FINITE = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}
_TS_ALIASES = ("timestamp", "datetime", "time")


@dataclass(frozen=True)
class Reject:
    """A row that was not stored: its line (1 = CSV header, data from 2) and why."""

    line: int
    reason: str
    raw: dict = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


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


def _factor_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, stripped unique texts): string work is done once per distinct value."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = np.array([str(u).strip() for u in uniques] + [""], dtype=object)
    codes = np.where(codes < 0, len(uniques), codes)
    return codes, texts


def _cell(series: pd.Series, i: int) -> str:
    v = series.iloc[i]
    return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip()


def validate_frame(df: pd.DataFrame, *, required: tuple[str, ...] | None = None,
                   kind: Kind | None = None, line_offset: int = 2,
                   default_asset: str = DEFAULT_ASSET, lines: np.ndarray | None = None) -> ValidationResult:
    """Check a batch of readings and return what can be stored.

    ``df`` may hold text (a CSV read as strings, JSON values) or typed columns: a timestamp
    column (``timestamp``, ``datetime`` or ``time``; ISO 8601, naive = UTC) or ``ts`` (epoch
    ms), the sensors in ``required`` (others optional), optional ``asset_id`` (else
    ``default_asset``), ``label``, ``load``, ``speed``, ``ambient``. Row *i* is reported as line
    ``lines[i]`` when given, else ``i + line_offset``.

    ``kind`` (an :class:`~twinlib.kinds.Kind`) names the signals to read instead of the pump's,
    with their physically possible ranges; column names match its signal names in any case.
    ``required`` (default: the pump's three sensors, or none of a kind's) must be present as
    columns. Columns that are neither a reading field nor a signal are reported in the notes.
    """
    n = len(df)
    numeric = kind.names if kind is not None else _NUMERIC
    limits = kind.valid if kind is not None else PHYSICAL_LIMITS
    if required is None:
        required = () if kind is not None else SENSORS
    spelled = {name.lower(): name for name in numeric}
    names = [str(c).strip().lower() for c in df.columns]
    names = [spelled.get(c, c) for c in names]
    doubled = sorted({c for c in names if names.count(c) > 1})
    if doubled:
        raise ValidationError(f"duplicate column(s): {', '.join(doubled)}")
    cols = dict(zip(names, df.columns))
    ts_col = next((cols[a] for a in _TS_ALIASES if a in cols), None)
    has_ms = ts_col is None and "ts" in cols
    unknown = [str(c) for c, nm in zip(df.columns, names)
               if nm not in numeric and nm not in (*_TS_ALIASES, "ts", "asset_id", "label", "kind", "location")]
    missing = [c for c in required if c not in cols]
    if ts_col is None and not has_ms:
        missing.insert(0, "timestamp")
    if missing:
        raise ValidationError(f"missing column(s): {', '.join(missing)} "
                              f"(found: {', '.join(map(str, df.columns)) or 'none'})")
    line_no = np.asarray(lines, dtype=np.int64) if lines is not None else np.arange(n) + line_offset
    reasons: dict[int, list[str]] = {}

    def flag(i, why: str) -> None:
        reasons.setdefault(int(i), []).append(why)

    # timestamps: parsed in one vectorised call; only the failures are looked at one by one
    if has_ms:
        raw_ts = df[cols["ts"]]
        ms = pd.to_numeric(raw_ts, errors="coerce").to_numpy(dtype=float)
        for i in np.nonzero(~np.isfinite(ms))[0]:
            flag(i, f"unparseable ts {_cell(raw_ts, i)!r} (epoch milliseconds expected)")
        ts_ms = np.where(np.isfinite(ms), ms, 0).astype(np.int64)
    else:
        raw_ts = df[ts_col]
        if pd.api.types.is_datetime64_any_dtype(raw_ts.dtype):
            parsed = raw_ts
            if isinstance(parsed.dtype, pd.DatetimeTZDtype):
                parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        else:
            parsed = pd.to_datetime(raw_ts, errors="coerce", utc=True, format="ISO8601")
            parsed = parsed.dt.tz_localize(None)
        nat = parsed.isna().to_numpy()
        for i in np.nonzero(nat)[0]:
            text = _cell(raw_ts, i)
            flag(i, "missing timestamp" if not text else
                 f"unparseable timestamp {text!r} (use YYYY-MM-DD HH:MM:SS)")
        ts_ms = np.where(nat, 0, parsed.to_numpy(dtype="datetime64[ms]").astype(np.int64))

    # numbers
    values: dict[str, np.ndarray] = {}
    for name in numeric:
        if name not in cols:
            continue
        raw = df[cols[name]]
        typed = pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype)
        num = (raw.to_numpy(dtype=float) if typed else
               pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)).copy()
        optional = name not in required
        for i in np.nonzero(~np.isfinite(num))[0]:
            if typed:  # a typed NaN is an absent value (JSON null); an infinity is not finite
                text = "" if np.isnan(num[i]) else str(num[i])
            else:
                text = _cell(raw, i)
            if not text:
                if not optional:
                    flag(i, f"missing {name}")
                num[i] = np.nan
            elif text.lower() in _NOT_FINITE:
                flag(i, f"{name} is not a finite number ({text!r})")
            else:
                flag(i, f"non-numeric {name} {text!r}")
        if name in limits:
            lo, hi = limits[name]
            with np.errstate(invalid="ignore"):
                out = np.isfinite(num) & ((num < lo) | (num > hi))
            for i in np.nonzero(out)[0]:
                flag(i, f"{name} {num[i]:g} outside the physically possible range [{lo:g}, {hi:g}]")
        values[name] = num

    # assets and labels: string checks once per distinct value
    if "asset_id" in cols:
        codes, texts = _factor_text(df[cols["asset_id"]])
        texts = np.array([t or default_asset for t in texts], dtype=object)
        ok_ids = np.array([bool(ASSET_ID_PATTERN.match(t)) for t in texts])
        asset_ids = texts[codes]
        for i in np.nonzero(~ok_ids[codes])[0]:
            flag(i, f"invalid asset_id {asset_ids[i]!r} (letters, digits, _ . : - ; at most 64 characters)")
    else:
        asset_ids = np.full(n, default_asset, dtype=object)
    if "label" in cols:
        codes, texts = _factor_text(df[cols["label"]])
        too_long = np.array([len(t) > 64 for t in texts])
        labels = np.array([t or None for t in texts], dtype=object)[codes]
        for i in np.nonzero(too_long[codes])[0]:
            flag(i, "label longer than 64 characters")
    else:
        labels = np.full(n, None, dtype=object)

    # duplicates inside the batch: the first copy is kept, later ones are reported
    bad = np.zeros(n, dtype=bool)
    bad[list(reasons)] = True
    ok_idx = np.nonzero(~bad)[0]
    key = pd.DataFrame({"a": asset_ids[ok_idx], "t": ts_ms[ok_idx]})
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        first = key.drop_duplicates(keep="first").reset_index().set_index(["a", "t"])["index"]
        for j in np.nonzero(dup)[0]:
            i = ok_idx[j]
            orig = ok_idx[first.loc[(asset_ids[i], ts_ms[i])]]
            flag(i, f"duplicate of line {line_no[orig]} (same asset_id and timestamp)")
            bad[i] = True

    rejects = [Reject(int(line_no[i]), "; ".join(reasons[i]), _row(df, i)) for i in sorted(reasons)]
    keep = ~bad
    clean = pd.DataFrame({"asset_id": asset_ids[keep], "ts": ts_ms[keep]})
    for name in numeric:
        if name in values:
            clean[name] = values[name][keep]
        elif kind is None and name in SENSORS:
            clean[name] = np.nan
    clean["label"] = labels[keep]
    clean.insert(2, "timestamp", clean["ts"].to_numpy().astype("datetime64[ms]"))
    notes: list[str] = []
    if unknown:
        what = f"signals of kind {kind.name!r}" if kind is not None else "reading columns"
        notes.append(f"column(s) {', '.join(unknown)} are not {what}: not stored "
                     f"(declare them in the asset's kind to keep them)")
    # out of order: stored by timestamp all the same; say so
    late = int((clean.groupby("asset_id", sort=False)["ts"].diff() < 0).sum())
    if late:
        notes.append(f"{late} row(s) arrived out of timestamp order; stored by timestamp")
    return ValidationResult(clean=clean, rejects=rejects, notes=notes, total=n)


def _row(df: pd.DataFrame, i: int) -> dict:
    rec = df.iloc[i].to_dict()
    return {str(k): (None if (isinstance(v, float) and v != v) else v) for k, v in rec.items()}
