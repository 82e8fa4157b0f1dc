"""Getting readings in: one validation path, then the store.

``validate_frame`` checks a batch and explains every refused row; ``ingest_frame`` validates and
stores; ``ingest_csv`` streams a CSV file of any size through the same path chunk by chunk;
``read_csv`` / ``write_csv`` handle twinlib's CSV format. The live sources (simulator,
replay, MQTT) live in ``twinlib.ingest.sources`` and all end in ``ingest_frame``.
"""
from .csvio import EXPORT_COLUMNS, CsvReader, export_columns, read_csv, write_csv
from .pipeline import IngestReport, ingest_by_kind, ingest_csv, ingest_frame, ingest_result
from .validate import DEFAULT_ASSET, Reject, ValidationError, ValidationResult, validate_frame

__all__ = ["validate_frame", "ingest_frame", "ingest_by_kind", "ingest_result", "ingest_csv", "read_csv",
           "write_csv", "CsvReader",
           "IngestReport", "Reject", "ValidationError", "ValidationResult", "DEFAULT_ASSET",
           "EXPORT_COLUMNS", "export_columns"]
