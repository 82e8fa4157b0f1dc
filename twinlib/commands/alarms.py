"""``twin alarms``: alarm management (ISA-18.2 / EEMUA 191) from the command line.

* ``twin alarms [list]`` — alarms, newest first (``--state``, ``--asset``, ``--unacked``);
* ``twin alarms history`` — filtered by asset, severity, state, rule and time range, paged;
* ``twin alarms ack ID [--note TEXT]`` — acknowledge (who: ``--by``, else ``TWIN_USER`` /
  ``[alarms] user``, else the login name);
* ``twin alarms shelve ASSET RULE --for 2h --reason TEXT`` / ``unshelve ASSET RULE``;
* ``twin alarms oos ASSET [RULE] --reason TEXT`` (out of service) / ``oos ASSET [RULE] --return``;
* ``twin alarms suppressions`` — shelves and out-of-service entries in force (``--all``);
* ``twin alarms audit`` — who acknowledged, shelved, changed rules, when and why;
* ``twin alarms rates`` — EEMUA 191 figures (per operator-hour, peak in 10 min, floods,
  standing, chattering, top sources).

``--json`` prints one JSON object per line, each alarm in the API's shape
(:func:`twinlib.alarms.alarm_to_json`).
"""
from __future__ import annotations

import argparse
import json
import sys

from ..alarms import (
    CursorError,
    alarm_to_json,
    audit_to_json,
    decode_cursor,
    encode_cursor,
    resolve_user,
    suppression_to_json,
)
from ..store import open_store
from ..store._alarm_mgmt import AUDIT_ACTIONS
from ..store._alerts import HISTORY_STATES
from ..timeutil import format_iso, now_ms, parse_duration, to_ms
from ._common import CommandError, settings_from

__all__ = ["register"]

_DB_HELP = "SQLite database file, or a postgresql:// URL (default: $TWIN_DB, else data/twin.db)"


def register(sub) -> None:
    p = sub.add_parser(
        "alarms", help="list, acknowledge, shelve alarms; history, audit log, EEMUA rates",
        description="`twin alarms [list] [filters]` lists alarms, newest first; `ack ID` "
                    "acknowledges one (with --note); `history` filters and pages; `shelve` / "
                    "`unshelve` and `oos` (out of service) suppress alarms; `audit` shows who "
                    "did what; `rates` prints the EEMUA 191 alarm-rate figures.")
    _list_options(p, None)
    asub = p.add_subparsers(dest="alarm_cmd", metavar="ACTION")

    lp = asub.add_parser("list", help="list alarms, newest first (the default)")
    _list_options(lp, argparse.SUPPRESS)

    hp = asub.add_parser("history", help="alarm history: filters, time range, pages")
    _db(hp)
    hp.add_argument("--asset", help="only this asset")
    hp.add_argument("--severity", choices=("warning", "critical"), help="only this severity")
    hp.add_argument("--state", choices=HISTORY_STATES, help="only this state")
    hp.add_argument("--rule", help="only this rule")
    hp.add_argument("--since", help="alarms still going at or after this time (UTC)")
    hp.add_argument("--until", help="alarms raised before this time (UTC)")
    hp.add_argument("--limit", type=int, default=50, help="alarms per page (default 50)")
    hp.add_argument("--cursor", help="continue after the page that printed this cursor")
    hp.add_argument("--json", action="store_true", help="print JSON lines")

    ap = asub.add_parser("ack", help="acknowledge an alarm")
    ap.add_argument("alert_id", type=int, help="alarm id (see `twin alarms`)")
    _by(ap)
    ap.add_argument("--note", help="why / what was done (optional, up to 500 characters)")
    ap.add_argument("--at", help="when (UTC, default now)")
    ap.add_argument("--json", action="store_true", help="print the alarm as JSON")
    _db(ap)

    sp = asub.add_parser("shelve", help="shelve an asset's rule for a time, with a reason")
    sp.add_argument("asset", help="asset id")
    sp.add_argument("rule", help="alarm rule (as `twin alarms` shows it)")
    sp.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                    help="how long: 30min, 2h, 1d… (at most 7 days)")
    sp.add_argument("--reason", required=True, help="why (required)")
    _by(sp)
    sp.add_argument("--json", action="store_true", help="print the shelf as JSON")
    _db(sp)

    up = asub.add_parser("unshelve", help="remove the shelf from an asset's rule now")
    up.add_argument("asset", help="asset id")
    up.add_argument("rule", help="alarm rule")
    up.add_argument("--note", help="optional note")
    _by(up)
    up.add_argument("--json", action="store_true", help="print the shelf as JSON")
    _db(up)

    op = asub.add_parser("oos", help="take an asset (or one rule) out of service, or --return it")
    op.add_argument("asset", help="asset id")
    op.add_argument("rule", nargs="?", help="one rule only (default: every rule of the asset)")
    op.add_argument("--reason", help="why (required to take it out of service)")
    op.add_argument("--return", dest="back", action="store_true",
                    help="return it to service instead")
    op.add_argument("--note", help="optional note (with --return)")
    _by(op)
    op.add_argument("--json", action="store_true", help="print the entry as JSON")
    _db(op)

    xp = asub.add_parser("suppressions", help="shelves and out-of-service entries in force")
    xp.add_argument("--asset", help="only this asset")
    xp.add_argument("--all", action="store_true", help="also those that ended or expired")
    xp.add_argument("--json", action="store_true", help="print JSON lines")
    _db(xp)

    dp = asub.add_parser("audit", help="the audit log: acks, shelves, out of service, rule changes")
    dp.add_argument("--asset", help="only this asset")
    dp.add_argument("--action", choices=AUDIT_ACTIONS, help="only this action")
    dp.add_argument("--alarm", type=int, dest="alarm_id", help="only this alarm id")
    dp.add_argument("--since", help="from this time (UTC)")
    dp.add_argument("--until", help="before this time (UTC)")
    dp.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    dp.add_argument("--json", action="store_true", help="print JSON lines")
    _db(dp)

    rp = asub.add_parser("rates", help="EEMUA 191 alarm-rate figures for a time range")
    rp.add_argument("--since", help="start (UTC; default: --hours before --until)")
    rp.add_argument("--until", help="end (UTC; default now)")
    rp.add_argument("--hours", type=float, default=24.0, help="range length without --since "
                                                              "(default 24)")
    rp.add_argument("--operators", type=int, default=None,
                    help="operator positions sharing the alarms (default [alarms] operators, "
                         "else 1)")
    rp.add_argument("--top", type=int, default=10, help="top sources to list (default 10)")
    rp.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    _db(rp)
    p.set_defaults(func=cmd_alarms)


def _db(parser) -> None:
    parser.add_argument("--db", metavar="PATH|URL", default=argparse.SUPPRESS, help=_DB_HELP)


def _by(parser) -> None:
    parser.add_argument("--by", help="who (default: TWIN_USER / [alarms] user, else your login)")


def _list_options(parser: argparse.ArgumentParser, default) -> None:
    """The list filters; on the ``list`` sub-subcommand they default to SUPPRESS so that values
    given before ``list`` (``twin alarms --db X list``) are not overwritten."""
    sup = default is argparse.SUPPRESS

    def d(value):
        return argparse.SUPPRESS if sup else value

    parser.add_argument("--db", metavar="PATH|URL", default=d(None), help=_DB_HELP)
    parser.add_argument("--state", choices=HISTORY_STATES, default=d(None),
                        help="only this state (standing: active or not yet acknowledged)")
    parser.add_argument("--asset", default=d(None), help="only this asset")
    parser.add_argument("--unacked", action="store_true", default=d(False),
                        help="only unacknowledged alarms")
    parser.add_argument("--limit", type=int, default=d(50), help="how many (default 50)")
    parser.add_argument("--json", action="store_true", default=d(False), help="print JSON lines")


def _time(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return to_ms(text)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}", code=2) from None


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _dash(value) -> str:
    return "-" if value is None else str(value)


def _print_alarms(rows) -> None:
    if not rows:
        print("no alarms")
        return
    print(f"{'id':>5}  {'asset':<12} {'rule':<22} {'severity':<8} {'state':<24} {'started':<24} "
          f"{'ended':<24} {'peak':>8} {'count':>6}  ack")
    for r in rows:
        j = alarm_to_json(r)
        state = j["isa_state"] + (f" [{j['suppressed']}]" if j["suppressed"] else "")
        peak = f"{r['peak_value']:.4g}" if r["peak_value"] is not None else "-"
        ack = f"{r['acked_by']} {j['acked_at']}" if r["acked"] else "no"
        if r["acked"] and r.get("ack_note"):
            ack += f" ({r['ack_note']})"
        print(f"{r['id']:>5}  {r['asset_id']:<12} {r['rule']:<22} {r['severity']:<8} "
              f"{state:<24} {j['started_at']:<24} {_dash(j['ended_at']):<24} {peak:>8} "
              f"{r['trigger_count']:>6}  {ack}")


def _print_suppression(s: dict, as_json: bool, verb: str) -> None:
    j = suppression_to_json(s, now_ms())
    if as_json:
        _print_json(j)
        return
    what = f"{s['asset_id']}" + (f" / {s['rule']}" if s["rule"] else " (every rule)")
    if verb == "shelved":
        print(f"{what} shelved by {j['by']} until {j['expires_at']}: {j['reason']}")
    elif verb == "out_of_service":
        print(f"{what} out of service (by {j['by']} since {j['started_at']}): {j['reason']}")
    else:
        print(f"{what} {verb} by {j['ended_by']} at {j['ended_at']}")


def cmd_alarms(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    action = getattr(args, "alarm_cmd", None) or "list"
    handler = {"list": _cmd_list, "history": _cmd_history, "ack": _cmd_ack,
               "shelve": _cmd_shelve, "unshelve": _cmd_unshelve, "oos": _cmd_oos,
               "suppressions": _cmd_suppressions, "audit": _cmd_audit, "rates": _cmd_rates}
    writes = action in ("ack", "shelve", "unshelve", "oos")
    limit = getattr(args, "limit", None)
    if limit is not None and action == "list" and limit < 0:
        raise CommandError("--limit must not be negative", code=2)
    if limit is not None and action in ("history", "audit") and limit < 1:
        raise CommandError("--limit must be at least 1", code=2)
    store = open_store(settings.db_path, readonly=not writes)
    try:
        return handler[action](store, args, settings)
    finally:
        store.close()


def _cmd_list(store, args, settings) -> int:
    if args.state in (None, "active", "cleared"):
        rows = store.list_alerts(state=args.state, asset=args.asset,
                                 acked=False if args.unacked else None, limit=args.limit)
    else:
        rows, _ = store.alarm_history(state=args.state, asset=args.asset, limit=max(args.limit, 1))
        if args.unacked:
            rows = [r for r in rows if not r["acked"]]
    if args.json:
        for r in rows:
            _print_json(alarm_to_json(r))
        return 0
    _print_alarms(rows)
    return 0


def _cmd_history(store, args, settings) -> int:
    after = None
    if args.cursor:
        try:
            after = decode_cursor(args.cursor)
        except CursorError as exc:
            raise CommandError(str(exc), code=2) from None
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    if since is not None and until is not None and until < since:
        raise CommandError("--until must not be before --since", code=2)
    rows, nxt = store.alarm_history(asset=args.asset, severity=args.severity, state=args.state,
                                    rule=args.rule, since=since, until=until, after=after,
                                    limit=args.limit)
    if args.json:
        for r in rows:
            _print_json(alarm_to_json(r))
    else:
        _print_alarms(rows)
    if nxt is not None:
        print(f"more: --cursor {encode_cursor(nxt)}", file=sys.stderr)
    return 0


def _cmd_ack(store, args, settings) -> int:
    by = resolve_user(settings, args.by)
    at = _time(args.at, "--at")
    try:
        row = store.acknowledge_alert(args.alert_id, by, at, note=args.note)
    except KeyError:
        raise CommandError(f"no alarm with id {args.alert_id}", code=2) from None
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    if args.json:
        _print_json(alarm_to_json(row))
        return 0
    note = f": {row['ack_note']}" if row.get("ack_note") else ""
    print(f"alarm #{row['id']} acknowledged by {row['acked_by']} at "
          f"{format_iso(row['acked_at'])}{note}")
    return 0


def _checked_asset(store, asset: str) -> None:
    if not store.has_asset(asset):
        raise CommandError(f"unknown asset {asset!r}", code=2)


def _cmd_shelve(store, args, settings) -> int:
    _checked_asset(store, args.asset)
    try:
        seconds = parse_duration(args.duration)
        s = store.shelve_alarm(args.asset, args.rule, by=resolve_user(settings, args.by),
                               reason=args.reason, duration_s=seconds)
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    _print_suppression(s, args.json, "shelved")
    return 0


def _cmd_unshelve(store, args, settings) -> int:
    try:
        s = store.unshelve_alarm(args.asset, args.rule, by=resolve_user(settings, args.by),
                                 note=args.note)
    except KeyError as exc:
        raise CommandError(str(exc.args[0]), code=2) from None
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    _print_suppression(s, args.json, "unshelved")
    return 0


def _cmd_oos(store, args, settings) -> int:
    by = resolve_user(settings, args.by)
    try:
        if args.back:
            s = store.return_to_service(args.asset, args.rule, by=by, note=args.note)
            _print_suppression(s, args.json, "returned to service")
            return 0
        _checked_asset(store, args.asset)
        if not args.reason:
            raise CommandError("--reason is required to take alarms out of service", code=2)
        s = store.set_out_of_service(args.asset, args.rule, by=by, reason=args.reason)
    except KeyError as exc:
        raise CommandError(str(exc.args[0]), code=2) from None
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    _print_suppression(s, args.json, "out_of_service")
    return 0


def _cmd_suppressions(store, args, settings) -> int:
    now = now_ms()
    rows = store.list_suppressions(args.asset, in_force_at=None if args.all else now, limit=None)
    if args.json:
        for s in rows:
            _print_json(suppression_to_json(s, now))
        return 0
    if not rows:
        print("nothing shelved or out of service" if not args.all else "no shelves or "
              "out-of-service entries")
        return 0
    for s in rows:
        j = suppression_to_json(s, now)
        until = j["expires_at"] or "returned to service"
        end = f", ended {j['ended_at']} by {j['ended_by']}" if j["ended_at"] else ""
        print(f"#{j['id']:<4} {j['kind']:<14} {j['asset_id']:<12} {_dash(j['rule']):<22} "
              f"by {j['by']} from {j['started_at']} until {until if j['expires_at'] else '-'}"
              f"{end}{'' if j['in_force'] else ' (not in force)'}: {j['reason']}")
    return 0


def _cmd_audit(store, args, settings) -> int:
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    rows = store.list_audit(asset=args.asset, action=args.action, alert_id=args.alarm_id,
                            since=since, until=until, limit=args.limit)
    if args.json:
        for e in rows:
            _print_json(audit_to_json(e))
        return 0
    if not rows:
        print("no audit entries")
        return 0
    for e in rows:
        j = audit_to_json(e)
        what = " ".join(x for x in (f"#{j['alert_id']}" if j["alert_id"] else "",
                                    j["asset_id"] or "", j["rule"] or "") if x)
        note = f": {j['note']}" if j["note"] else ""
        print(f"{j['at']}  {j['by']:<14} {j['action']:<18} {what}{note}")
    return 0


def _cmd_rates(store, args, settings) -> int:
    from ..detect.alarm_rates import alarm_rates, format_rates

    until = _time(args.until, "--until")
    until = now_ms() if until is None else until
    since = _time(args.since, "--since")
    if since is None:
        if not args.hours > 0:
            raise CommandError("--hours must be positive", code=2)
        since = until - int(args.hours * 3_600_000)
    operators = args.operators
    if operators is None:
        try:
            operators = int(settings.section("alarms").get("operators", 1))
        except (TypeError, ValueError):
            raise CommandError("[alarms] operators must be an integer", code=2) from None
    try:
        r = alarm_rates(store, since, until, operators=operators, top=args.top)
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    if args.json:
        _print_json(r)
    else:
        print(format_rates(r))
    return 0
