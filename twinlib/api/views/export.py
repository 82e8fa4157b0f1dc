"""``GET /export.csv``: the readings of a time range in twinlib's CSV format (re-importable).

The range is streamed in time slices so a large export never sits in memory whole; its size is
checked first, so a request is either answered completely or refused (400), never cut short.

The answer carries a weak ``ETag`` made before streaming from what decides its content: the
range, the asset, how many readings the range holds and the store's highest reading id and
newest time (readings are only ever added or, by retention, removed: either changes one of
these). ``If-None-Match`` with that tag is answered 304 without reading the range.
"""
from __future__ import annotations

import hashlib
import io
import re

from flask import Blueprint, Response, current_app, request

from twinlib.api import schemas as S
from twinlib.api.errors import ApiError
from twinlib.api.openapi import doc
from twinlib.api.params import get_range, get_text
from twinlib.api.stores import read_store
from twinlib.ingest import export_columns, write_csv
from twinlib.store import Store

__all__ = ["bp", "MAX_EXPORT_ROWS", "SLICE_MS"]

bp = Blueprint("export", __name__)

#: Readings per export; a larger range is refused with a 400 asking for a narrower one.
MAX_EXPORT_ROWS = 1_000_000
#: Time slice read from the store at a time while streaming.
SLICE_MS = 3600 * 1000
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _csv_chunks(store: Store, since: int, until: int, asset: str | None):
    # Its own connection and one read transaction: the slices form one consistent snapshot
    # even while a writer is loading, and an abandoned download cannot leave a transaction open
    # on the per-thread connection other requests reuse.
    try:
        store.conn.execute("BEGIN")
        metas = [store.asset(asset)] if asset is not None else store.assets(counts=False)
        columns = export_columns(s for m in metas if m for s in m["signals"])
        yield ",".join(columns) + "\n"
        start = since
        while start <= until:
            # Jump over empty stretches: the loop runs once per slice that holds readings.
            start = store.next_ts(start, asset)
            if start is None or start > until:
                break
            end = min(until, start + SLICE_MS - 1)
            df = store.window(start, end, asset=asset)
            if len(df):
                buf = io.StringIO()
                write_csv(df, buf, columns=columns)
                text = buf.getvalue()
                yield text[text.index("\n") + 1:]  # the header was sent once, first
            start = end + 1
    finally:
        store.close()


@bp.get("/export.csv")
@doc(tags=["readings"], operation_id="exportCsv",
     params=[{**S.SINCE, "required": True}, {**S.UNTIL, "required": True}, S.ASSET_Q],
     responses={"200": {"description": "CSV with a header row, oldest reading first.",
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {"text/csv": {"schema": {"type": "string"}}}},
                "304": {"description": "Not modified (`If-None-Match` matched the `ETag`)."},
                **S.ASSET_404})
def export_csv():
    """Readings of a time range as CSV (the import format).

    The readings with ``since <= timestamp <= until`` (optionally one asset)."""
    since, until = get_range()
    if since is None:
        raise ApiError(400, "since is required", parameter="since")
    if until is None:
        raise ApiError(400, "until is required", parameter="until")
    asset = get_text("asset")
    store = read_store()
    if asset is not None and not store.has_asset(asset):
        raise ApiError(404, f"unknown asset {asset!r}", parameter="asset")
    n = store.count(asset, since, until)
    if n > MAX_EXPORT_ROWS:
        raise ApiError(400, f"the range holds {n} readings; at most {MAX_EXPORT_ROWS} per export "
                            "(narrow since/until)", parameter="since")
    tag = hashlib.blake2b(repr((1, since, until, asset, n, store.max_id(),
                               store.newest_ts())).encode(), digest_size=12).hexdigest()
    if request.if_none_match.contains_weak(tag):
        resp = Response(status=304)
        resp.set_etag(tag, weak=True)
        resp.headers["Cache-Control"] = "private, no-cache"
        return resp
    # Opened before the answer starts, so a failure is a 503, not a cut-off 200 (and the same
    # way as every reader: read-only directories included). Closed when the response is.
    stream_store = current_app.extensions["twinlib.stores"].open_reader()
    name = f"readings_{asset}.csv" if asset and _SAFE_NAME.fullmatch(asset) else "readings.csv"
    resp = Response(_csv_chunks(stream_store, since, until, asset),
                    mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
    resp.call_on_close(stream_store.close)
    resp.set_etag(tag, weak=True)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp
