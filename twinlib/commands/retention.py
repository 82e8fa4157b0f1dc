"""``twin retention --keep 90d``: forget raw readings older than a duration, keep the rollups.

SQLite deletes in chunks (short write transactions, so a running monitor keeps writing) and gives
the space back with an incremental vacuum; PostgreSQL drops whole daily partitions (TimescaleDB:
its chunks). The 1-minute and 1-hour rollups are refreshed first, so the downsampled history of
what is deleted survives: 1-minute rollups are kept 4 × ``--keep`` unless ``--keep-1m`` says
otherwise, hourly rollups until ``--keep-1h`` (default: forever). Without ``--keep`` the settings
file's ``[retention] keep = "90d"`` applies (the same setting the monitor applies once a day).
"""
from __future__ import annotations

from ..store import open_store
from ..store._rollups import parse_duration_ms
from ._common import CommandError, add_db_option, settings_from

__all__ = ["register", "retention_policy", "apply_policy"]


def register(sub) -> None:
    p = sub.add_parser("retention", help="forget raw readings older than --keep (rollups stay)")
    add_db_option(p)
    p.add_argument("--keep", metavar="DURATION",
                   help="raw readings to keep, e.g. 90d, 12h, 2w (default: [retention] keep)")
    p.add_argument("--keep-1m", metavar="DURATION", help="1-minute rollups to keep (default 4 × keep)")
    p.add_argument("--keep-1h", metavar="DURATION", help="1-hour rollups to keep (default: forever)")
    p.set_defaults(func=cmd_retention)


def retention_policy(settings, keep=None, keep_1m=None, keep_1h=None) -> dict | None:
    """``{keep_ms, rollup_1m_ms, rollup_1h_ms}`` from the arguments, else ``[retention]`` of the
    settings file; None when no retention is configured. Bad durations raise ``ValueError``."""
    sec = settings.section("retention")
    keep = keep or sec.get("keep")
    if not keep:
        return None
    k1 = keep_1m or sec.get("keep_1m")
    k2 = keep_1h or sec.get("keep_1h")
    return {"keep_ms": parse_duration_ms(keep),
            "rollup_1m_ms": parse_duration_ms(k1) if k1 else None,
            "rollup_1h_ms": parse_duration_ms(k2) if k2 else None}


def apply_policy(store, policy: dict) -> dict:
    """Apply a :func:`retention_policy` to an open store."""
    return store.apply_retention(policy["keep_ms"], rollup_1m_ms=policy["rollup_1m_ms"],
                                 rollup_1h_ms=policy["rollup_1h_ms"])


def cmd_retention(args) -> int:
    settings = settings_from(args)
    try:
        policy = retention_policy(settings, args.keep, args.keep_1m, args.keep_1h)
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    if policy is None:
        raise CommandError("say how long to keep raw readings: --keep 90d (or [retention] keep "
                           "in the settings file)", code=2)
    with open_store(settings.db_path) as store:
        out = apply_policy(store, policy)
    print(f"{out['readings_deleted']:,} raw readings deleted (older than {policy['keep_ms'] // 1000:,} s); "
          f"{out['rollups_1m_deleted']:,} 1-minute rollups deleted; "
          f"{out.get('rollups_1h_deleted', 0):,} 1-hour rollups deleted")
    return 0
