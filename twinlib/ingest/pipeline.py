"""Validate, then store: the path every source takes into the store."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..kinds import Kind
from ..store import Store
from .validate import Reject, ValidationError, ValidationResult, validate_frame

__all__ = ["IngestReport", "ingest_frame", "ingest_result", "register_assets"]


@dataclass
class IngestReport:
    """What happened to a batch: stored, already there, refused (with reasons), remarks."""

    source: str
    received: int
    inserted: int
    duplicates: int
    rejects: list[Reject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": self.source, "received": self.received, "inserted": self.inserted,
                "duplicates": self.duplicates, "rejected": len(self.rejects),
                "rejects": [{"line": r.line, "reason": r.reason} for r in self.rejects],
                "notes": list(self.notes)}


def register_assets(store: Store, asset_ids, kind: Kind, location: str | None = None) -> None:
    """Make sure each asset is known to the store with ``kind``'s signal layout (new ones only:
    an asset's recorded kind is changed by ``twin assets set`` or the settings file, not here)."""
    new = [a for a in dict.fromkeys(asset_ids) if not store.has_asset(a)]
    if new:
        store.upsert_assets([{"asset_id": a, "kind": kind.name, "signals": list(kind.names),
                              **({"location": location} if location else {})} for a in new])


def ingest_result(store: Store, result: ValidationResult, *, source: str, strict: bool = False,
                  progress: bool = False, kind: Kind | None = None,
                  location: str | None = None) -> IngestReport:
    """Store an already validated batch; under ``strict`` any reject refuses the whole batch."""
    if strict and result.rejects:
        raise ValidationError(f"{len(result.rejects)} bad row(s); nothing was stored (strict mode)",
                              result.rejects)
    if kind is not None and len(result.clean):
        register_assets(store, result.clean["asset_id"].unique().tolist(), kind, location)
    loaded = store.load_readings(result.clean, progress=progress)
    notes = list(result.notes)
    if loaded.duplicates:
        notes.append(f"{loaded.duplicates} reading(s) were already stored; kept once")
    if getattr(loaded, "conflicts", 0):
        notes.append(f"{loaded.conflicts} of those hold values that differ from the stored ones; "
                     "the stored values were kept")
    return IngestReport(source, result.total, loaded.inserted, loaded.duplicates,
                        list(result.rejects), notes)


def ingest_frame(store: Store, df: pd.DataFrame, *, source: str, strict: bool = False,
                 required: tuple[str, ...] | None = None, line_offset: int = 2,
                 default_asset: str | None = None, kind: Kind | None = None,
                 location: str | None = None) -> IngestReport:
    """Validate ``df`` (see :func:`~twinlib.ingest.validate.validate_frame`) and store the good rows.

    With a ``kind``, the readings are that kind's signals, and assets new to the store are
    registered as that kind (with ``location``) and its signal layout.
    """
    kwargs = {"default_asset": default_asset} if default_asset else {}
    result = validate_frame(df, required=required, kind=kind, line_offset=line_offset, **kwargs)
    return ingest_result(store, result, source=source, strict=strict, kind=kind, location=location)
