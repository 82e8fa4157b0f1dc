"""Alarm management (ISA-18.2) in the store: shelves, out-of-service, the audit log.

Mixed into the stores through :class:`twinlib.store._alerts.AlertsMixin` (SQLite and, through the
``?`` translation of its connection, PostgreSQL: the SQL here is common to both).

* ``alarm_suppressions``: a **shelf** (``kind='shelved'``) hides one asset + rule for a limited
  time and needs a reason; **out of service** (``kind='out_of_service'``) hides one asset + rule,
  or every rule of an asset (``rule`` NULL), until it is returned to service. A row is in force
  at ``t`` when ``started_at <= t``, ``t < expires_at`` (shelves) and ``t < ended_at`` (once
  unshelved / returned). Nothing has to run when a shelf expires: every question is asked *at* a
  time, so expiry is exact whatever the clock.
* Alarms raised while suppressed are still recorded, flagged in ``alerts.suppressed``; the
  notifier does not send them (:meth:`alarm_suppression`), and they do not count as needing an
  operator's action.
* ``alarm_audit``: append-only, who / when / what / note for acks, shelves, unshelves,
  out-of-service changes and rule or threshold changes (:meth:`record_rule_config`).
"""
from __future__ import annotations

import json

from twinlib.timeutil import now_ms

__all__ = ["AlarmMgmtMixin", "SUPPRESSION_KINDS", "AUDIT_ACTIONS", "MAX_SHELVE_S",
           "SUPPRESSION_COLUMNS", "AUDIT_COLUMNS"]

SUPPRESSION_KINDS = ("shelved", "out_of_service")
AUDIT_ACTIONS = ("ack", "shelve", "unshelve", "out_of_service", "return_to_service",
                 "rule_change")
#: The longest a shelf may last (ISA-18.2: shelving is always time-limited).
MAX_SHELVE_S = 7 * 86_400
MAX_NAME = 100
MAX_NOTE = 500
SUPPRESSION_COLUMNS = ("id", "kind", "asset_id", "rule", "reason", "actor", "started_at",
                       "expires_at", "ended_at", "ended_by")
AUDIT_COLUMNS = ("id", "at", "actor", "action", "alert_id", "asset_id", "rule", "note", "detail")
_SUP_SELECT = f"SELECT {', '.join(SUPPRESSION_COLUMNS)} FROM alarm_suppressions"
_AUDIT_SELECT = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM alarm_audit"
_IN_FORCE = "started_at <= ? AND (expires_at IS NULL OR expires_at > ?) AND (ended_at IS NULL OR ended_at > ?)"
_RULE_META = "alarms.rule_config"


def clean_name(value, what: str = "by") -> str:
    """A person's name (who acknowledged, shelved…): 1 to 100 characters, trimmed."""
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME:
        raise ValueError(f"{what} must be a name of 1 to {MAX_NAME} characters")
    return value.strip()


def clean_note(value, what: str = "note", required: bool = False) -> str | None:
    """An optional note / a required reason: at most 500 characters, trimmed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"{what} is required (1 to {MAX_NOTE} characters)")
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_NOTE:
        raise ValueError(f"{what} must be text of at most {MAX_NOTE} characters")
    return value.strip()


def _sup_row(r) -> dict:
    return dict(zip(SUPPRESSION_COLUMNS, r))


def _audit_row(r) -> dict:
    d = dict(zip(AUDIT_COLUMNS, r))
    try:
        d["detail"] = json.loads(d["detail"]) if d["detail"] else None
    except ValueError:
        pass
    return d


def _flatten(node, prefix: str = "") -> dict:
    out = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = node
    return out


def rule_config(file: dict) -> dict:
    """The alarm-relevant part of a settings file, flattened to dotted keys: ``thresholds``,
    ``rules``, each asset's ``thresholds``/``rules``/``kind``, and the kinds' limits."""
    keep = {"thresholds": file.get("thresholds") or {}, "rules": file.get("rules") or {}}
    for asset_id, sec in (file.get("assets") or {}).items():
        if isinstance(sec, dict):
            mine = {k: sec[k] for k in ("thresholds", "rules", "kind") if k in sec}
            if mine:
                keep[f"assets.{asset_id}"] = mine
    if file.get("kinds"):
        keep["kinds"] = file["kinds"]
    return {k: v for k, v in _flatten(keep).items() if k}


class AlarmMgmtMixin:
    """Shelves, out-of-service and the audit log; needs ``self.conn`` and ``self.transaction``."""

    # -- suppression: questions --------------------------------------------------------------
    def suppressions_in_force(self, at: int | None = None, asset: str | None = None) -> list[dict]:
        """Shelves and out-of-service entries in force at ``at`` (ms, default now)."""
        at = now_ms() if at is None else int(at)
        sql, args = f"{_SUP_SELECT} WHERE {_IN_FORCE}", [at, at, at]
        if asset is not None:
            sql += " AND asset_id = ?"
            args.append(str(asset))
        return [_sup_row(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def list_suppressions(self, asset: str | None = None, *, in_force_at: int | None = None,
                          limit: int | None = 100) -> list[dict]:
        """Every shelf / out-of-service entry, newest first (``in_force_at``: only those)."""
        if in_force_at is not None:
            rows = self.suppressions_in_force(in_force_at, asset)
            return rows[::-1][:limit] if limit is not None else rows[::-1]
        sql, args = _SUP_SELECT, []
        if asset is not None:
            sql += " WHERE asset_id = ?"
            args.append(str(asset))
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [_sup_row(r) for r in self.conn.execute(sql, args)]

    @staticmethod
    def _covering(suppressions, asset_id: str, rule: str) -> dict | None:
        """The entry that suppresses (asset, rule): out of service before a shelf."""
        best = None
        for s in suppressions:
            if s["asset_id"] != asset_id or (s["rule"] is not None and s["rule"] != rule):
                continue
            if best is None or (s["kind"] == "out_of_service" and best["kind"] != "out_of_service"):
                best = s
        return best

    def alarm_suppression(self, asset_id: str, rule: str, at: int | None = None) -> dict | None:
        """The shelf / out-of-service entry hiding ``(asset_id, rule)`` at ``at``, or None."""
        return self._covering(self.suppressions_in_force(at, asset_id), asset_id, rule)

    def _with_suppression(self, rows: list[dict], at: int | None = None) -> list[dict]:
        """Alarms that still stand (active, or not yet acknowledged) show whether they are
        suppressed *now* (a shelf that expired no longer hides them); finished alarms keep
        what was recorded. Adds ``suppressed_until`` (a shelf's expiry) to every row."""
        standing = [r for r in rows if r["state"] == "active" or not r["acked"]]
        live = self.suppressions_in_force(at) if standing else []
        for r in rows:
            r["suppressed_until"] = None
        for r in standing:
            s = self._covering(live, r["asset_id"], r["rule"])
            r["suppressed"] = s["kind"] if s else None
            r["suppressed_until"] = s["expires_at"] if s else None
        return rows

    # -- suppression: changes ----------------------------------------------------------------
    def _mark_standing(self, asset_id: str, rule: str | None, kind: str | None,
                       only: str | None = None) -> None:
        sql = "UPDATE alerts SET suppressed = ? WHERE asset_id = ? AND (state = 'active' OR acked = 0)"
        args: list = [kind, asset_id]
        if rule is not None:
            sql += " AND rule = ?"
            args.append(rule)
        if only is not None:
            sql += " AND suppressed = ?"
            args.append(only)
        elif kind == "shelved":  # a shelf never hides what is out of service
            sql += " AND suppressed IS NULL"
        self.conn.execute(sql, args)

    def _insert_suppression(self, kind, asset_id, rule, reason, by, at, expires_at) -> int:
        return int(self.conn.execute(
            "INSERT INTO alarm_suppressions (kind, asset_id, rule, reason, actor, started_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (kind, asset_id, rule, reason, by, at, expires_at)).fetchall()[0][0])

    def _end_suppression(self, sid: int, by: str, at: int) -> None:
        self.conn.execute("UPDATE alarm_suppressions SET ended_at = ?, ended_by = ? WHERE id = ?",
                          (at, by, int(sid)))

    def _get_suppression(self, sid: int) -> dict:
        return _sup_row(self.conn.execute(f"{_SUP_SELECT} WHERE id = ?", (int(sid),)).fetchone())

    def shelve_alarm(self, asset_id: str, rule: str, *, by: str, reason: str,
                     duration_s: float, at: int | None = None) -> dict:
        """Shelve ``rule`` of ``asset_id`` for ``duration_s`` seconds (at most a week) with a
        reason; a shelf already in force is replaced. Returns the shelf."""
        by = clean_name(by)
        reason = clean_note(reason, "reason", required=True)
        if not isinstance(asset_id, str) or not asset_id or not isinstance(rule, str) or not rule:
            raise ValueError("shelving needs an asset and a rule")
        try:
            duration_s = float(duration_s)
        except (TypeError, ValueError):
            raise ValueError(f"duration must be a number of seconds, got {duration_s!r}") from None
        if not 0 < duration_s <= MAX_SHELVE_S:
            raise ValueError(f"duration must be more than 0 s and at most {MAX_SHELVE_S} s "
                             f"(7 days), got {duration_s:g}")
        at = now_ms() if at is None else int(at)
        expires = at + int(round(duration_s * 1000))
        with self.transaction():
            replaced = [s["id"] for s in self.suppressions_in_force(at, asset_id)
                        if s["kind"] == "shelved" and s["rule"] == rule]
            for sid in replaced:
                self._end_suppression(sid, by, at)
            sid = self._insert_suppression("shelved", asset_id, rule, reason, by, at, expires)
            self._mark_standing(asset_id, rule, "shelved")
            self.add_audit("shelve", by, asset_id=asset_id, rule=rule, note=reason, at=at,
                           detail={"suppression_id": sid, "expires_at": expires,
                                   "duration_s": duration_s, "replaced": replaced})
        return self._get_suppression(sid)

    def unshelve_alarm(self, asset_id: str, rule: str, *, by: str, note: str | None = None,
                       at: int | None = None) -> dict:
        """End the shelf on ``(asset_id, rule)`` now; ``KeyError`` when none is in force."""
        return self._end("shelved", "unshelve", asset_id, rule, by, note, at)

    def set_out_of_service(self, asset_id: str, rule: str | None = None, *, by: str,
                           reason: str, at: int | None = None) -> dict:
        """Take an asset (``rule`` None: every rule) or one of its rules out of service until
        :meth:`return_to_service`. Already out of service: the entry in force is returned."""
        by = clean_name(by)
        reason = clean_note(reason, "reason", required=True)
        if not isinstance(asset_id, str) or not asset_id:
            raise ValueError("out of service needs an asset")
        at = now_ms() if at is None else int(at)
        with self.transaction():
            for s in self.suppressions_in_force(at, asset_id):
                if s["kind"] == "out_of_service" and s["rule"] == rule:
                    return s
            sid = self._insert_suppression("out_of_service", asset_id, rule, reason, by, at, None)
            self._mark_standing(asset_id, rule, "out_of_service", only=None)
            self.add_audit("out_of_service", by, asset_id=asset_id, rule=rule, note=reason, at=at,
                           detail={"suppression_id": sid})
        return self._get_suppression(sid)

    def return_to_service(self, asset_id: str, rule: str | None = None, *, by: str,
                          note: str | None = None, at: int | None = None) -> dict:
        """End the out-of-service entry for ``asset_id`` (and ``rule``); ``KeyError`` if none."""
        return self._end("out_of_service", "return_to_service", asset_id, rule, by, note, at)

    def _end(self, kind, action, asset_id, rule, by, note, at) -> dict:
        by = clean_name(by)
        note = clean_note(note)
        at = now_ms() if at is None else int(at)
        with self.transaction():
            found = [s for s in self.suppressions_in_force(at, asset_id)
                     if s["kind"] == kind and s["rule"] == rule]
            if not found:
                what = "shelf" if kind == "shelved" else "out-of-service entry"
                raise KeyError(f"no {what} in force for {asset_id}"
                               + (f" / {rule}" if rule else ""))
            for s in found:
                self._end_suppression(s["id"], by, at)
            self._mark_standing(asset_id, rule, None, only=kind)
            self.add_audit(action, by, asset_id=asset_id, rule=rule, note=note, at=at,
                           detail={"suppression_id": found[-1]["id"]})
        return self._get_suppression(found[-1]["id"])

    # -- the audit log -----------------------------------------------------------------------
    def add_audit(self, action: str, by: str, *, alert_id: int | None = None,
                  asset_id: str | None = None, rule: str | None = None, note: str | None = None,
                  detail=None, at: int | None = None) -> int:
        """Append one audit entry; returns its id."""
        if action not in AUDIT_ACTIONS:
            raise ValueError(f"action must be one of {AUDIT_ACTIONS}, got {action!r}")
        at = now_ms() if at is None else int(at)
        text = None if detail is None else json.dumps(detail, sort_keys=True, default=str)
        return int(self.conn.execute(
            "INSERT INTO alarm_audit (at, actor, action, alert_id, asset_id, rule, note, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (at, by, action, alert_id, asset_id, rule, note, text)).fetchall()[0][0])

    def list_audit(self, *, asset: str | None = None, action: str | None = None,
                   alert_id: int | None = None, since: int | None = None,
                   until: int | None = None, before: tuple | None = None,
                   limit: int | None = 100) -> list[dict]:
        """Audit entries, newest first; ``before=(at, id)`` continues after that entry."""
        where, args = [], []
        for col, val in (("asset_id", asset), ("action", action), ("alert_id", alert_id)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if since is not None:
            where.append("at >= ?")
            args.append(int(since))
        if until is not None:
            where.append("at < ?")
            args.append(int(until))
        if before is not None:
            where.append("(at < ? OR (at = ? AND id < ?))")
            args += [int(before[0]), int(before[0]), int(before[1])]
        sql = _AUDIT_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [_audit_row(r) for r in self.conn.execute(sql, args)]

    def record_rule_config(self, file: dict, *, by: str, at: int | None = None) -> list[dict]:
        """Compare the alarm-relevant settings (:func:`rule_config` of ``file``) with those seen
        last time and write one ``rule_change`` audit entry per changed key; returns the changes
        (``[{"key", "old", "new"}]``). The first call records the baseline and writes nothing."""
        now = rule_config(file)
        raw = self.get_meta(_RULE_META)
        at = now_ms() if at is None else int(at)
        if raw is None:
            self.set_meta(_RULE_META, json.dumps(now, sort_keys=True, default=str))
            return []
        try:
            before = json.loads(raw)
        except ValueError:
            before = {}
        norm = json.loads(json.dumps(now, default=str))
        changes = [{"key": k, "old": before.get(k), "new": norm.get(k)}
                   for k in sorted(set(before) | set(norm)) if before.get(k) != norm.get(k)]
        if changes:
            with self.transaction():
                for c in changes:
                    head = c["key"].split(".")
                    asset = head[1] if head[0] == "assets" and len(head) > 2 else None
                    rule = head[-1] if "rules" in head or "thresholds" in head else None
                    self.add_audit("rule_change", by, asset_id=asset, rule=rule, at=at,
                                   note=f"{c['key']}: {c['old']!r} -> {c['new']!r}", detail=c)
                self.set_meta(_RULE_META, json.dumps(now, sort_keys=True, default=str))
        return changes
