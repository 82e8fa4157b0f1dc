"""Alarm-rate figures as EEMUA 191 (and ISA-18.2's performance section) report them.

:func:`alarm_rates` is the one computation behind ``GET /alarms/rates``, ``twin alarms rates``
and the dashboard's figures. Over a time range ``[start, end)``:

* **alarms** raised in the range that reached the operator (annunciated: not shelved or out of
  service when raised); ``suppressed`` counts the others, which are recorded but not presented;
* **per operator-hour**: annunciated alarms / hours / operators (``[alarms] operators``, default
  1); also the average per 10 minutes per operator;
* **10-minute windows**: the range cut into consecutive 10-minute windows from ``start``; the
  **peak** window (count and start) and the **flood** share: % of windows with more than 10
  alarms (EEMUA 191's flood threshold);
* **standing**: alarms still active at ``end`` that have been active for more than 24 h;
* **chattering**: asset + rule raised 3 or more times within 60 s (ISA-18.2's definition);
* **bad actors**: the most frequent asset + rule, with their share of all alarms.

``targets`` states the EEMUA 191 / ISA-18.2 benchmarks each figure is read against, and
``rating`` the verdict for the average and peak rates. Constants are those published
benchmarks, not tuned to data.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from twinlib.timeutil import format_iso

__all__ = ["alarm_rates", "WINDOW_MS", "FLOOD_ALARMS", "STANDING_MS", "CHATTER_COUNT",
           "CHATTER_MS", "TARGETS", "format_rates"]

WINDOW_MS = 10 * 60_000          # EEMUA 191's 10-minute window
FLOOD_ALARMS = 10                # more than 10 alarms in 10 minutes: a flood
STANDING_MS = 24 * 3_600_000     # active for more than 24 h: a standing alarm
CHATTER_COUNT, CHATTER_MS = 3, 60_000  # 3 or more within a minute: chattering
#: The published benchmarks (EEMUA 191 3rd ed. table 8 / ISA-18.2 table 5).
TARGETS = {
    "per_operator_hour": {"acceptable": 6, "manageable": 12},
    "per_10min_average": {"acceptable": 1, "manageable": 2},
    "peak_10min": {"acceptable": 10},
    "flood_percent": {"acceptable": 1.0},
    "standing": {"acceptable": 0},
    "chattering": {"acceptable": 0},
}
MAX_RANGE_MS = 366 * 86_400_000


def _rating(value: float, target: dict) -> str:
    if value <= target["acceptable"]:
        return "acceptable"
    if "manageable" in target and value <= target["manageable"]:
        return "manageable"
    return "overloaded"


def alarm_rates(store, start: int, end: int, *, operators: int = 1, top: int = 10) -> dict:
    """EEMUA 191 figures for alarms raised in ``[start, end)`` (epoch ms); see the module doc.

    ``operators``: operator positions sharing the load (at least 1). Times in the result are
    ISO 8601 UTC, the same form as every alarm endpoint.
    """
    start, end, operators, top = int(start), int(end), int(operators), int(top)
    if end <= start:
        raise ValueError("the range must end after it starts")
    if end - start > MAX_RANGE_MS:
        raise ValueError("the range may span at most 366 days")
    if operators < 1:
        raise ValueError(f"operators must be at least 1, got {operators}")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    rows = store.alerts_started_between(start, end)
    shown = [r for r in rows if not r.get("suppressed")]
    hours = (end - start) / 3_600_000
    n_windows = -(-(end - start) // WINDOW_MS)
    counts = Counter((r["started_at"] - start) // WINDOW_MS for r in shown)
    peak_w, peak_n = max(counts.items(), key=lambda kv: (kv[1], -kv[0]), default=(0, 0))
    floods = sum(1 for c in counts.values() if c > FLOOD_ALARMS)

    by_source: dict[tuple, list[int]] = defaultdict(list)
    for r in shown:
        by_source[(r["asset_id"], r["rule"])].append(int(r["started_at"]))
    chattering = []
    for (asset, rule), times in by_source.items():
        worst, j = 0, 0
        for i, t in enumerate(times):  # times ascending (the store orders by started_at)
            while t - times[j] >= CHATTER_MS:
                j += 1
            worst = max(worst, i - j + 1)
        if worst >= CHATTER_COUNT:
            chattering.append({"asset_id": asset, "rule": rule, "alarms": len(times),
                               "max_per_minute": worst})
    chattering.sort(key=lambda c: (-c["max_per_minute"], -c["alarms"], c["asset_id"], c["rule"]))
    total = len(shown)
    actors = sorted(by_source.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    bad_actors = [{"asset_id": a, "rule": r, "alarms": len(t),
                   "percent": round(100.0 * len(t) / total, 2)} for (a, r), t in actors]

    standing = [{"id": int(r["id"]), "asset_id": r["asset_id"], "rule": r["rule"],
                 "severity": r["severity"], "started_at": format_iso(r["started_at"]),
                 "active_hours": round((end - r["started_at"]) / 3_600_000, 2),
                 "suppressed": r.get("suppressed")}
                for r in store.alerts_active_at(end, started_before=end - STANDING_MS)]

    per_hour = total / hours / operators
    per_10 = total / (hours * 6) / operators
    flood_pct = round(100.0 * floods / n_windows, 2)
    return {
        "start": format_iso(start), "end": format_iso(end), "hours": round(hours, 4),
        "operators": operators,
        "alarms": total, "suppressed": len(rows) - total,
        "per_operator_hour": round(per_hour, 3),
        "per_10min_average": round(per_10, 3),
        "windows_10min": int(n_windows),
        "peak_10min": {"alarms": int(peak_n),
                       "start": format_iso(start + peak_w * WINDOW_MS) if peak_n else None},
        "flood_windows": int(floods),
        "flood_percent": flood_pct,
        "standing": standing,
        "chattering": chattering[:top],
        "bad_actors": bad_actors,
        "top_share_percent": round(sum(b["percent"] for b in bad_actors), 2),
        "targets": TARGETS,
        "rating": {"per_operator_hour": _rating(per_hour, TARGETS["per_operator_hour"]),
                   "peak_10min": _rating(peak_n, TARGETS["peak_10min"]),
                   "flood_percent": _rating(flood_pct, TARGETS["flood_percent"])},
    }


def format_rates(r: dict) -> str:
    """The figures as a short text report (``twin alarms rates``)."""
    lines = [
        f"alarm rates {r['start']} .. {r['end']} ({r['hours']:g} h, {r['operators']} operator"
        f"{'s' if r['operators'] != 1 else ''}; EEMUA 191)",
        f"  alarms annunciated     {r['alarms']}  (suppressed, not shown: {r['suppressed']})",
        f"  per operator-hour      {r['per_operator_hour']:g}  ({r['rating']['per_operator_hour']}; "
        f"target <= {TARGETS['per_operator_hour']['acceptable']})",
        f"  average per 10 min     {r['per_10min_average']:g}",
        f"  peak in 10 min         {r['peak_10min']['alarms']}"
        + (f" from {r['peak_10min']['start']}" if r['peak_10min']['start'] else "")
        + f"  ({r['rating']['peak_10min']}; target <= {FLOOD_ALARMS})",
        f"  flood windows (>10)    {r['flood_windows']} of {r['windows_10min']} = "
        f"{r['flood_percent']:g} %  ({r['rating']['flood_percent']}; target < 1 %)",
        f"  standing (> 24 h)      {len(r['standing'])}",
        f"  chattering sources     {len(r['chattering'])}",
    ]
    for s in r["standing"]:
        lines.append(f"    standing #{s['id']} {s['asset_id']} {s['rule']} since {s['started_at']} "
                     f"({s['active_hours']:g} h)")
    for c in r["chattering"]:
        lines.append(f"    chattering {c['asset_id']} {c['rule']}: {c['alarms']} alarms, up to "
                     f"{c['max_per_minute']} in a minute")
    if r["bad_actors"]:
        lines.append(f"  top sources ({r['top_share_percent']:g} % of all alarms):")
        for b in r["bad_actors"]:
            lines.append(f"    {b['alarms']:>6}  {b['percent']:>6.2f} %  {b['asset_id']}  {b['rule']}")
    return "\n".join(lines)
