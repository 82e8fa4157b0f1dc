"""Validate, then store: the path every source takes into the store.

``ingest_frame`` handles one batch (HTTP POST, MQTT, replay, simulator); ``ingest_csv`` streams
a CSV file of any size through the same path chunk by chunk (each chunk validated, then stored),
so memory stays bounded and what was stored before a failure stays stored (loading again stores
nothing twice).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ..kinds import Kind
from ..store import Store
from .validate import Reject, ValidationError, ValidationResult, validate_frame

__all__ = ["IngestReport", "ingest_frame", "ingest_by_kind", "ingest_result", "ingest_csv",
           "register_assets", "KEEP_REJECTS_PER_CODE"]

#: Rejects kept in a report per reason code (the counts are always complete).
KEEP_REJECTS_PER_CODE = 20


@dataclass
class IngestReport:
    """What happened to a batch: stored, already there, refused (with reasons), remarks.

    ``rejects`` may be capped (the first ``KEEP_REJECTS_PER_CODE`` per reason code for a CSV
    import); ``rejected`` and ``reject_counts`` always count them all. ``conflicts`` counts
    readings that were already stored with different values (the stored ones are kept).
    """

    source: str
    received: int
    inserted: int
    duplicates: int
    rejects: list[Reject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rejected: int | None = None
    reject_counts: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    lines: int | None = None   # physical lines read (CSV: header and blank lines included)
    blank: int = 0

    def __post_init__(self) -> None:
        if self.rejected is None:
            self.rejected = len(self.rejects)
        if not self.reject_counts and self.rejects:
            self.reject_counts = dict(Counter(r.code or "other" for r in self.rejects))

    def as_dict(self) -> dict:
        return {"source": self.source, "received": self.received, "inserted": self.inserted,
                "duplicates": self.duplicates, "rejected": self.rejected,
                "reject_counts": dict(self.reject_counts), "conflicts": self.conflicts,
                "rejects": [{"line": r.line, "reason": r.reason} for r in self.rejects],
                "notes": list(self.notes)}


def register_assets(store: Store, asset_ids, kind: Kind, location: str | None = None) -> None:
    """Make sure each asset is known to the store with ``kind``'s signal layout (new ones only:
    an asset's recorded kind is changed by the settings file, not by a load)."""
    new = [a for a in dict.fromkeys(asset_ids) if not store.has_asset(a)]
    if new:
        store.upsert_assets([{"asset_id": a, "kind": kind.name, "signals": list(kind.names),
                              **({"location": location} if location else {})} for a in new])


def ingest_result(store: Store, result: ValidationResult, *, source: str, strict: bool = False,
                  progress: bool = False, kind: Kind | None = None,
                  location: str | None = None) -> IngestReport:
    """Store an already validated batch; under ``strict`` any reject refuses the whole batch.

    With a ``kind``, assets new to the store are registered as that kind (and ``location``).
    """
    if strict and result.rejects:
        raise ValidationError(f"{len(result.rejects)} bad row(s); nothing was stored (strict mode)",
                              result.rejects)
    if kind is not None and len(result.clean):
        register_assets(store, result.clean["asset_id"].unique().tolist(), kind, location)
    loaded = store.load_readings(result.clean, progress=progress) if progress else \
        store.load_readings(result.clean)
    notes = list(result.notes)
    conflicts = 0
    if loaded.duplicates:
        # the store compares each duplicate with the reading it keeps
        conflicts = int(getattr(loaded, "conflicts", 0))
        notes.append(_duplicates_note(loaded.duplicates, conflicts))
    return IngestReport(source, result.total, loaded.inserted, loaded.duplicates,
                        list(result.rejects), notes, conflicts=conflicts)


def _duplicates_note(duplicates: int, conflicts: int) -> str:
    text = f"{duplicates} reading(s) were already stored; kept once"
    if conflicts:
        text += (f"; {conflicts} of them with different values (the stored values were kept; "
                 f"delete those readings first to replace them)")
    return text


def ingest_frame(store: Store, df: pd.DataFrame, *, source: str, strict: bool = False,
                 required: tuple[str, ...] | None = None, line_offset: int = 2,
                 default_asset: str | None = None, lines: np.ndarray | None = None,
                 limits: Mapping[str, tuple[float, float]] | None = None,
                 window: tuple[int, int] | None = None, kind: Kind | None = None,
                 location: str | None = None) -> IngestReport:
    """Validate ``df`` (see :func:`~twinlib.ingest.validate.validate_frame`) and store the good rows.

    ``kind``: the readings are that kind's signals, and new assets are registered as that kind.
    """
    result = validate_frame(df, required=required, line_offset=line_offset, lines=lines,
                            default_asset=default_asset, limits=limits, window=window, kind=kind)
    return ingest_result(store, result, source=source, strict=strict, kind=kind, location=location)


def ingest_by_kind(store: Store, df: pd.DataFrame, kind_of: Callable[[str], Kind], *,
                   source: str, line_offset: int = 2,
                   required: tuple[str, ...] | None = None) -> IngestReport:
    """Store a batch whose assets are of several kinds: each asset's rows are validated with its
    own kind (``kind_of(asset_id)``; ``required`` defaults to that kind's measured signals) and
    stored; the reports are merged, rows keeping their line numbers.

    A row without a usable asset id is validated with the pump's checks, which refuse it with
    the reason. A kind's columns that no row of it carries are simply absent (empty), and a
    column that is none of a kind's signals is named in the notes, as for one kind.
    """
    from ..kinds import BUILTIN_KINDS, DEFAULT_KIND

    n = len(df)
    lines = np.arange(n) + line_offset
    assets = (df["asset_id"].astype(object).to_numpy() if "asset_id" in df.columns
              else np.full(n, None, dtype=object))
    kinds: dict[object, Kind] = {}
    for a in dict.fromkeys(assets):
        try:
            kinds[a] = kind_of(a) if isinstance(a, str) and a else BUILTIN_KINDS[DEFAULT_KIND]
        except Exception:  # an asset the settings cannot place: the pump's checks refuse it
            kinds[a] = BUILTIN_KINDS[DEFAULT_KIND]
    by_kind: dict[str, tuple[Kind, list[int]]] = {}
    for i, a in enumerate(assets):
        k = kinds[a]
        by_kind.setdefault(k.name, (k, []))[1].append(i)
    total = IngestReport(source, 0, 0, 0)
    for kind, idx in by_kind.values():
        rows = np.asarray(idx)
        part = df if len(by_kind) == 1 else df.iloc[rows].reset_index(drop=True)
        own = {*kind.names, "asset_id", "label", "timestamp", "ts", "time", "datetime"}
        # another kind's signal columns, all empty in this kind's rows, are not this kind's news
        extra = [c for c in part.columns if c not in own and part[c].isna().all()]
        part = part.drop(columns=extra)
        need = kind.measured if required is None else tuple(r for r in required if r in kind)
        present = tuple(r for r in need if r in part.columns)
        missing = [r for r in need if r not in part.columns]
        for r in missing:  # absent everywhere: each row is refused for it, with its line
            part[r] = np.nan
        rep = ingest_frame(store, part, source=source, lines=lines[rows], kind=kind,
                           required=(*present, *missing))
        total.received += rep.received
        total.inserted += rep.inserted
        total.duplicates += rep.duplicates
        total.conflicts += rep.conflicts
        total.rejects.extend(rep.rejects)
        total.notes.extend(rep.notes)
    total.rejects.sort(key=lambda r: r.line)
    total.rejected = len(total.rejects)
    total.reject_counts = dict(Counter(r.code or "other" for r in total.rejects))
    return total


def ingest_csv(store: Store, source: str | os.PathLike, *, strict: bool = False,
               required: tuple[str, ...] | None = None,
               limits: Mapping[str, tuple[float, float]] | None = None,
               kind: Kind | None = None, location: str | None = None,
               default_asset: str | None = None, window: tuple[int, int] | None = None,
               chunk_bytes: int | None = None, keep_per_code: int = KEEP_REJECTS_PER_CODE,
               on_reject: Callable[[Reject], None] | None = None,
               on_chunk: Callable[[IngestReport], None] | None = None,
               source_name: str = "csv") -> IngestReport:
    """Stream a readings CSV into the store: read a chunk, validate it, store it, repeat.

    Memory is bounded by the chunk size, not the file. Every reject goes to ``on_reject`` (e.g.
    a ``--rejects`` file); the report keeps the first ``keep_per_code`` per reason code and
    counts them all. Under ``strict`` the file is read twice: once to validate (nothing is
    stored if any line is bad, :class:`ValidationError`), once to store. ``on_chunk`` sees the
    running totals after each stored chunk (progress).
    """
    from .csvio import DEFAULT_CHUNK_BYTES, CsvReader

    reader = CsvReader(source, required=required, limits=limits, default_asset=default_asset,
                       window=window, chunk_bytes=chunk_bytes or DEFAULT_CHUNK_BYTES, kind=kind)
    total = IngestReport(source_name, 0, 0, 0)
    notes: Counter = Counter()
    try:
        if strict:
            bad = _strict_pass(reader, keep_per_code, on_reject)
            if bad.rejected:
                raise ValidationError(f"{bad.rejected:,} bad line(s); nothing was stored (strict "
                                      f"mode)", bad.rejects)
            reader.rewind()
        for result in reader:
            report = ingest_result(store, result, source=source_name, kind=kind, location=location)
            total.received += report.received
            total.inserted += report.inserted
            total.duplicates += report.duplicates
            total.conflicts += report.conflicts
            _count_rejects(total, report.rejects, keep_per_code, on_reject)
            for note in result.notes:
                notes[_note_kind(note)] += 1
                if notes[_note_kind(note)] == 1:
                    total.notes.append(note)
            if on_chunk is not None:
                total.lines, total.blank = reader.lines, reader.blank
                on_chunk(total)
        total.lines, total.blank = reader.lines, reader.blank
    finally:
        reader.close()
    if total.duplicates:
        total.notes.append(_duplicates_note(total.duplicates, total.conflicts))
    for kind, n in notes.items():
        if n > 1:
            total.notes.append(f"(the note {kind!r} applied to {n} chunks of the file)")
    return total


def _note_kind(note: str) -> str:
    return note.split(" ", 1)[1][:40] if " " in note else note


def _strict_pass(reader, keep_per_code: int, on_reject) -> IngestReport:
    bad = IngestReport("csv", 0, 0, 0)
    for result in reader:
        _count_rejects(bad, result.rejects, keep_per_code, on_reject)
    return bad


def _count_rejects(report: IngestReport, rejects: list[Reject], keep_per_code: int,
                   on_reject) -> None:
    counts = report.reject_counts
    for r in rejects:
        code = r.code or "other"
        counts[code] = counts.get(code, 0) + 1
        if counts[code] <= keep_per_code:
            report.rejects.append(r)
        if on_reject is not None:
            on_reject(r)
    report.rejected += len(rejects)
