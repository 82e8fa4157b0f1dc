"""Alarms (ISA-18.2 alarm management): list and read them, acknowledge with a note, shelve and
unshelve, out of service / return to service, the history, the audit log, the EEMUA 191 rates.

Every alarm is serialised by :func:`twinlib.alarms.alarm_to_json` (the same shape as
``twin alarms --json``). New list endpoints answer ``{"items": [...], "next": url-or-null}``
with an opaque ``cursor`` and ``limit``; ``GET /alarms`` keeps its plain list.

Who acts (ack, shelve, …): the logged-in user (HTTP basic credentials, or ``REMOTE_USER`` set by
an authenticating proxy), else the body's ``by``, else the configured user (``TWIN_USER`` / ``[alarms] user``), else
``api``.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request, url_for

from twinlib.alarms import (
    CursorError,
    alarm_to_json,
    audit_to_json,
    decode_cursor,
    encode_cursor,
    resolve_user,
    suppression_to_json,
)
from twinlib.api.auth import require_token
from twinlib.api.errors import ApiError
from twinlib.api.jsonio import json_response, read_json_body
from twinlib.api.params import get_bool, get_choice, get_int, get_range, get_text
from twinlib.api.stores import read_store, write_with_retry
from twinlib.store._alarm_mgmt import AUDIT_ACTIONS, MAX_NAME, MAX_NOTE, MAX_SHELVE_S
from twinlib.store._alerts import HISTORY_STATES
from twinlib.timeutil import now_ms, parse_duration

__all__ = ["bp", "STATES", "MAX_ALARMS"]

bp = Blueprint("alarms", __name__)

#: ``state`` filters of ``GET /alarms`` and ``GET /alarms/history``.
STATES = HISTORY_STATES
SEVERITIES = ("warning", "critical")
MAX_ALARMS = 1000
#: Alarm ids are SQLite rowids: anything larger cannot exist (and would overflow the binding).
_MAX_ID = 2**63 - 1
_DAY_MS = 86_400_000


def _settings():
    return current_app.extensions.get("twinlib.settings")


def _known_asset(store, asset: str | None, parameter: str = "asset") -> None:
    if asset is not None and not store.has_asset(asset):
        raise ApiError(404, f"unknown asset {asset!r}", parameter=parameter)


@bp.get("/alarms")
def list_alarms():
    """Alarms, newest first, filtered by ``state``, ``asset`` and ``acked``; ``limit`` per page,
    the next page's URL in the ``Link`` header (``rel="next"``), with ``cursor``."""
    state = get_choice("state", STATES)
    asset = get_text("asset")
    acked = get_bool("acked")
    limit = get_int("limit", 100, 1, MAX_ALARMS)
    after = _cursor()
    store = read_store()
    _known_asset(store, asset)
    # the original's bare list, paged like /assets: the next page's link in a `Link` header
    alerts, nxt = store.alarm_history(state=state, asset=asset, acked=acked, after=after, limit=limit)
    nxt_url = _next_link("alarms.list_alarms", nxt)
    return json_response([alarm_to_json(a) for a in alerts],
                         headers={"Link": f'<{nxt_url}>; rel="next"'} if nxt_url else None)


def _next_link(endpoint: str, position) -> str | None:
    if position is None:
        return None
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    # relative (path + query), like every other list's `next`: right behind a reverse proxy
    return url_for(endpoint, **args, cursor=encode_cursor(position))


def _cursor():
    raw = get_text("cursor", 200)
    if raw is None:
        return None
    try:
        return decode_cursor(raw)
    except CursorError as exc:
        raise ApiError(400, str(exc), parameter="cursor") from None


@bp.get("/alarms/history")
def alarm_history():
    """Alarm history, newest first: ``asset``, ``severity``, ``state``, ``rule``, the time range
    ``since``/``until`` (alarms whose life overlaps it), ``cursor``/``limit``."""
    asset = get_text("asset")
    severity = get_choice("severity", SEVERITIES)
    state = get_choice("state", STATES)
    rule = get_text("rule")
    since, until = get_range()
    limit = get_int("limit", 100, 1, MAX_ALARMS)
    after = _cursor()
    store = read_store()
    _known_asset(store, asset)
    rows, nxt = store.alarm_history(asset=asset, severity=severity, state=state, rule=rule,
                                    since=since, until=until, after=after, limit=limit)
    return json_response({"items": [alarm_to_json(a) for a in rows],
                          "next": _next_link("alarms.alarm_history", nxt)})


@bp.get("/alarms/summary")
def alarm_summary():
    """Standing alarms by ISA-18.2 state: what a header shows."""
    return json_response(read_store().alarm_counts())


def _alarm_id(alarm_id: int) -> int:
    if alarm_id > _MAX_ID:
        raise ApiError(404, f"unknown alarm {alarm_id}", parameter="alarm_id")
    return alarm_id


@bp.get("/alarms/<int:alarm_id>")
def get_alarm(alarm_id: int):
    """One alarm by id."""
    alert = read_store().get_alert(_alarm_id(alarm_id))
    if alert is None:
        raise ApiError(404, f"unknown alarm {alarm_id}", parameter="alarm_id")
    return json_response(alarm_to_json(alert))


def _body(example: str) -> dict:
    if not (request.content_length or request.data):
        return {}
    body = read_json_body()
    if not isinstance(body, dict):
        raise ApiError(400, f"body must be a JSON object such as {example}", parameter="body")
    return body


def _who(body: dict) -> str:
    """The logged-in user (HTTP basic), else the body's ``by``, else the configured user."""
    auth = request.authorization
    logged_in = auth.username if auth is not None and auth.type == "basic" else None
    logged_in = logged_in or request.remote_user  # REMOTE_USER from an authenticating proxy
    by = body.get("by")
    if by is not None and (not isinstance(by, str) or not by.strip() or len(by) > MAX_NAME):
        raise ApiError(400, f"by must be a name of 1 to {MAX_NAME} characters", parameter="by")
    if logged_in and len(logged_in) <= MAX_NAME and logged_in.strip():
        return logged_in.strip()
    return resolve_user(_settings(), by, fallback="api")


def _text(body: dict, name: str, required: bool = False, max_len: int = MAX_NOTE) -> str | None:
    value = body.get(name)
    if value is None:           # absent, or null: the same
        if required:
            raise ApiError(400, f"{name} is required", parameter=name)
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ApiError(400, f"{name} must be text of 1 to {max_len} characters", parameter=name)
    return value.strip()


@bp.post("/alarms/<int:alarm_id>/ack")
@require_token
def acknowledge_alarm(alarm_id: int):
    """Acknowledge one alarm; the body may name who (``by``) and add a ``note``."""
    alarm_id = _alarm_id(alarm_id)
    body = _body('{"by": "operator", "note": "checked on site"}')
    by = _who(body)
    note = _text(body, "note")
    try:
        # Retried while the database is busy: acknowledging twice keeps the first.
        alert = write_with_retry(lambda store: store.acknowledge_alert(alarm_id, by, note=note))
    except KeyError:
        raise ApiError(404, f"unknown alarm {alarm_id}", parameter="alarm_id") from None
    return json_response(alarm_to_json(alert))


def _duration(body: dict) -> float:
    raw = body.get("duration")
    if raw is None:
        raise ApiError(400, 'duration is required (seconds, or text such as "2h" or "30min")',
                       parameter="duration")
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ApiError(400, 'duration must be seconds or text such as "2h"', parameter="duration")
    try:
        seconds = parse_duration(raw)
    except (ValueError, TypeError):
        raise ApiError(400, f'duration must be seconds or text such as "2h", got {raw!r}',
                       parameter="duration") from None
    if not 0 < seconds <= MAX_SHELVE_S:
        raise ApiError(400, f"duration must be more than 0 s and at most {MAX_SHELVE_S} s (7 days)",
                       parameter="duration")
    return seconds


def _target(body: dict, rule_required: bool) -> tuple[str, str | None]:
    asset = _text(body, "asset_id", required=True, max_len=200)
    rule = _text(body, "rule", required=rule_required, max_len=MAX_NAME)
    _known_asset(read_store(), asset, "asset_id")
    return asset, rule


def _suppress(example: str, rule_required: bool, write, *, reason: bool = False,
              duration: bool = False):
    """One suppression change (shelve, unshelve, out of service, return to service): the body
    parsed and checked as the endpoint documents, ``write(store, asset, rule, by, text, seconds)``
    run with the store-busy retry, the suppression answered as JSON. ``text`` is the required
    ``reason`` when ``reason`` is set, else the optional ``note``."""
    body = _body(example)
    asset, rule = _target(body, rule_required)
    text = _text(body, "reason", required=True) if reason else _text(body, "note")
    seconds = _duration(body) if duration else None
    by = _who(body)
    try:
        s = write_with_retry(lambda st: write(st, asset, rule, by, text, seconds))
    except KeyError as exc:
        raise ApiError(404, str(exc.args[0]) if exc.args else "nothing to end") from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return json_response(suppression_to_json(s, now_ms()))


@bp.post("/alarms/shelve")
@require_token
def shelve():
    """Shelve an asset's rule for a ``duration`` with a ``reason``: its alarms are still recorded
    but flagged shelved, not notified and not counted as needing action until the shelf expires
    or is removed."""
    return _suppress('{"asset_id": "pump-01", "rule": "temperature_high", "reason": "sensor '
                     'being replaced", "duration": "2h"}', True,
                     lambda st, a, r, by, text, s: st.shelve_alarm(a, r, by=by, reason=text,
                                                                   duration_s=s),
                     reason=True, duration=True)


@bp.post("/alarms/unshelve")
@require_token
def unshelve():
    """Remove the shelf from an asset's rule now."""
    return _suppress('{"asset_id": "pump-01", "rule": "temperature_high"}', True,
                     lambda st, a, r, by, text, s: st.unshelve_alarm(a, r, by=by, note=text))


@bp.post("/alarms/out-of-service")
@require_token
def out_of_service():
    """Take an asset (no ``rule``: all its rules) or one rule out of service, with a reason."""
    return _suppress('{"asset_id": "pump-01", "reason": "maintenance"}', False,
                     lambda st, a, r, by, text, s: st.set_out_of_service(a, r, by=by, reason=text),
                     reason=True)


@bp.post("/alarms/return-to-service")
@require_token
def return_to_service():
    """Return an asset (or one rule) to service."""
    return _suppress('{"asset_id": "pump-01"}', False,
                     lambda st, a, r, by, text, s: st.return_to_service(a, r, by=by, note=text))


@bp.get("/alarms/suppressions")
def list_suppressions():
    """Shelves and out-of-service entries, newest first: those in force now (default) or all
    (``in_force=false``)."""
    asset = get_text("asset")
    in_force = get_bool("in_force")
    limit = get_int("limit", 100, 1, MAX_ALARMS)
    store = read_store()
    _known_asset(store, asset)
    now = now_ms()
    rows = store.list_suppressions(asset, in_force_at=now if in_force in (None, True) else None,
                                   limit=limit)
    return json_response({"items": [suppression_to_json(s, now) for s in rows], "next": None})


@bp.get("/alarms/audit")
def alarm_audit():
    """The audit log, newest first: acks, shelves, unshelves, out-of-service changes and
    rule/threshold changes (who, when, what, note); filters ``asset``, ``action``, ``alarm_id``,
    ``since``/``until``; ``cursor``/``limit``."""
    asset = get_text("asset")
    action = get_choice("action", AUDIT_ACTIONS)
    alert_id = get_int("alarm_id", None, 1, _MAX_ID)
    since, until = get_range()
    limit = get_int("limit", 100, 1, MAX_ALARMS)
    before = _cursor()
    rows = read_store().list_audit(asset=asset, action=action, alert_id=alert_id, since=since,
                                   until=until, before=before, limit=limit + 1)
    nxt = (rows[limit - 1]["at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return json_response({"items": [audit_to_json(e) for e in rows[:limit]],
                          "next": _next_link("alarms.alarm_audit", nxt)})


@bp.get("/alarms/rates")
def alarm_rates_view():
    """EEMUA 191 alarm-rate figures for ``since``/``until`` (default: the 24 h to now)."""
    from twinlib.detect.alarm_rates import MAX_RANGE_MS, alarm_rates

    since, until = get_range()
    until = now_ms() if until is None else until
    since = until - _DAY_MS if since is None else since
    if until <= since:
        raise ApiError(400, "until must be after since", parameter="until")
    if until - since > MAX_RANGE_MS:
        raise ApiError(400, "the range may span at most 366 days", parameter="since")
    settings = _settings()
    default_ops = 1
    if settings is not None:
        try:
            default_ops = max(1, int(settings.section("alarms").get("operators", 1)))
        except (TypeError, ValueError):
            default_ops = 1
    operators = get_int("operators", default_ops, 1, 1000)
    top = get_int("top", 10, 1, 100)
    return json_response(alarm_rates(read_store(), since, until, operators=operators, top=top))
