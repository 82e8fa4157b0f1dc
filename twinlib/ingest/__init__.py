"""Getting readings in: one validation path, then the store.

``validate_frame`` checks a batch and explains every refused row; ``ingest_frame`` validates and
stores; ``read_csv`` / ``write_csv`` handle twinlib's CSV format. The live sources (simulator,
replay, MQTT) live in ``twinlib.ingest.sources`` and all end in ``ingest_frame``.
"""
from .csvio import EXPORT_COLUMNS, read_csv, write_csv
from .pipeline import IngestReport, ingest_frame, ingest_result
from .validate import DEFAULT_ASSET, Reject, ValidationError, ValidationResult, validate_frame

__all__ = ["validate_frame", "ingest_frame", "ingest_result", "read_csv", "write_csv",
           "IngestReport", "Reject", "ValidationError", "ValidationResult", "DEFAULT_ASSET",
           "EXPORT_COLUMNS"]
