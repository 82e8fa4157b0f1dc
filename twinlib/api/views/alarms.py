"""Alarms: list them (by state, asset, acknowledgement), read one, acknowledge one."""
from __future__ import annotations

from flask import Blueprint, request

from twinlib.api.auth import require_token
from twinlib.api.errors import ApiError
from twinlib.api.jsonio import alert_to_dict, json_response, read_json_body
from twinlib.api.params import get_bool, get_choice, get_int, get_text
from twinlib.api.stores import read_store, write_with_retry

__all__ = ["bp", "STATES", "MAX_ALARMS"]

bp = Blueprint("alarms", __name__)

STATES = ("active", "cleared")
MAX_ALARMS = 1000
#: Alarm ids are SQLite rowids: anything larger cannot exist (and would overflow the binding).
_MAX_ID = 2**63 - 1


@bp.get("/alarms")
def list_alarms():
    """Alarms, newest first, filtered by ``state``, ``asset`` and ``acked``."""
    state = get_choice("state", STATES)
    asset = get_text("asset")
    acked = get_bool("acked")
    limit = get_int("limit", 100, 1, MAX_ALARMS)
    store = read_store()
    if asset is not None and not store.has_asset(asset):
        raise ApiError(404, f"unknown asset {asset!r}", parameter="asset")
    alerts = store.list_alerts(state=state, asset=asset, acked=acked, limit=limit)
    return json_response([alert_to_dict(a) for a in alerts])


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
    return json_response(alert_to_dict(alert))


@bp.post("/alarms/<int:alarm_id>/ack")
@require_token
def acknowledge_alarm(alarm_id: int):
    """Acknowledge one alarm; the body may name who acknowledged it (``{"by": "..."}``)."""
    alarm_id = _alarm_id(alarm_id)
    by = "api"
    if request.content_length or request.data:
        body = read_json_body()
        if not isinstance(body, dict):
            raise ApiError(400, 'body must be a JSON object such as {"by": "operator"}',
                           parameter="body")
        if "by" in body:
            by = body["by"]
            if not isinstance(by, str) or not by.strip() or len(by) > 100:
                raise ApiError(400, "by must be a name of 1 to 100 characters", parameter="by")
    try:
        # Retried while the database is busy: acknowledging twice keeps the first.
        alert = write_with_retry(lambda store: store.acknowledge_alert(alarm_id, by))
    except KeyError:
        raise ApiError(404, f"unknown alarm {alarm_id}", parameter="alarm_id") from None
    return json_response(alert_to_dict(alert))
