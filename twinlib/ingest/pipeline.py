"""Validate, then store: the path every source takes into the store."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..config import SENSORS
from ..store import Store
from .validate import Reject, ValidationError, ValidationResult, validate_frame

__all__ = ["IngestReport", "ingest_frame", "ingest_result"]


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


def ingest_result(store: Store, result: ValidationResult, *, source: str, strict: bool = False,
                  progress: bool = False) -> IngestReport:
    """Store an already validated batch; under ``strict`` any reject refuses the whole batch."""
    if strict and result.rejects:
        raise ValidationError(f"{len(result.rejects)} bad row(s); nothing was stored (strict mode)",
                              result.rejects)
    loaded = store.load_readings(result.clean, progress=progress)
    notes = list(result.notes)
    if loaded.duplicates:
        notes.append(f"{loaded.duplicates} reading(s) were already stored; kept once")
    return IngestReport(source, result.total, loaded.inserted, loaded.duplicates,
                        list(result.rejects), notes)


def ingest_frame(store: Store, df: pd.DataFrame, *, source: str, strict: bool = False,
                 required: tuple[str, ...] = SENSORS, line_offset: int = 2,
                 default_asset: str | None = None) -> IngestReport:
    """Validate ``df`` (see :func:`~twinlib.ingest.validate.validate_frame`) and store the good rows."""
    kwargs = {"default_asset": default_asset} if default_asset else {}
    result = validate_frame(df, required=required, line_offset=line_offset, **kwargs)
    return ingest_result(store, result, source=source, strict=strict)
