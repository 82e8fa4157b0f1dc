"""``twin notify``: the notification outbox — what is pending, what failed, send it again.

    twin notify status [--json] [--limit 20]   # per channel: pending / failed / sent; the rows
    twin notify retry [--channel webhook]      # failed notifications → pending (the running
                                               # monitor sends them; else the next start does)
"""
from __future__ import annotations

import argparse
import json

from twinlib.commands._common import CommandError, add_db_option, settings_from

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``twin notify`` to the CLI."""
    p = subparsers.add_parser(
        "notify", help="notification outbox: pending and failed notifications",
        description="Notifications wait in the database's outbox until delivered (at least "
                    "once, retried with back-off, kept across restarts). `status` shows them; "
                    "`retry` queues the failed ones again.")
    sub = p.add_subparsers(dest="notify_command", metavar="ACTION")
    st = sub.add_parser("status", help="pending, failed and sent notifications per channel")
    add_db_option(st)
    st.add_argument("--json", action="store_true", help="print one JSON document")
    st.add_argument("--limit", type=int, default=20,
                    help="most pending and failed rows listed (default 20)")
    st.set_defaults(func=_status)
    rt = sub.add_parser("retry", help="queue failed notifications again")
    add_db_option(rt)
    rt.add_argument("--channel", help="only this channel (webhook, email)")
    rt.set_defaults(func=_retry)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _row(r: dict) -> dict:
    try:
        payload = json.loads(r["payload"])
    except ValueError:
        payload = {}
    return {"id": r["id"], "channel": r["channel"], "event_id": r["event_id"], "kind": r["kind"],
            "asset_id": payload.get("asset_id"), "rule": payload.get("rule"),
            "attempts": r["attempts"], "created_at": r["created_at"], "next_at": r["next_at"],
            "last_error": r["last_error"]}


def _open(args, readonly: bool):
    from twinlib.store import open_store

    settings = settings_from(args)
    if not settings.db_path.exists():
        raise CommandError(f"no database at {settings.db_path}", 1)
    return open_store(settings.db_path, readonly=readonly)


def _status(args: argparse.Namespace) -> int:
    from twinlib.timeutil import format_ts

    store = _open(args, readonly=True)
    try:
        channels = store.outbox_summary()
        pending = [_row(r) for r in store.outbox_list("pending", limit=args.limit)]
        failed = [_row(r) for r in store.outbox_list("failed", limit=args.limit)]
    finally:
        store.close()
    if args.json:
        print(json.dumps({"channels": channels, "pending": pending, "failed": failed},
                         default=str))
        return 0
    if not channels:
        print("no notifications yet")
        return 0
    for name, c in channels.items():
        line = f"{name}: {c['pending']} pending, {c['failed']} failed, {c['sent']} sent"
        if c["oldest_pending_ms"] is not None:
            line += (f"; oldest pending from {format_ts(c['oldest_pending_ms'])}, next attempt "
                     f"{format_ts(c['next_attempt_ms'])}")
        if c["last_error"]:
            line += f"; last error: {c['last_error']}"
        print(line)
    for title, rows in (("pending", pending), ("failed", failed)):
        if rows:
            print(f"\n{title}:")
            for r in rows:
                print(f"  #{r['id']} {r['channel']} {r['kind']} {r['asset_id']} {r['rule']} "
                      f"(event {r['event_id']}, {r['attempts']} attempt(s))"
                      + (f": {r['last_error']}" if r["last_error"] else ""))
    return 0


def _retry(args: argparse.Namespace) -> int:
    from twinlib.store._busy import retry_busy
    from twinlib.timeutil import now_ms

    store = _open(args, readonly=False)
    try:
        if not store.has_outbox():
            print("0 failed notification(s) queued again")
            return 0
        n = retry_busy(lambda: store.outbox_requeue(now_ms(), channel=args.channel))
    finally:
        store.close()
    print(f"{n} failed notification(s) queued again; the running monitor sends them (or the "
          "next start does)")
    return 0
