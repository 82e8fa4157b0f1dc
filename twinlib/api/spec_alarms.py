"""The OpenAPI description of the alarm endpoints (:mod:`twinlib.api.views.alarms`), merged into
:func:`twinlib.api.spec.build_spec`. Times here are ISO 8601 UTC (``…Z``), as every alarm
endpoint writes them (:func:`twinlib.alarms.alarm_to_json`)."""
from __future__ import annotations

from twinlib.api.params import TEXT_PATTERN, TIME_PATTERN
from twinlib.store._alarm_mgmt import AUDIT_ACTIONS, MAX_NAME, MAX_NOTE, MAX_SHELVE_S
from twinlib.store._alerts import HISTORY_STATES

__all__ = ["alarm_schemas", "alarm_paths"]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict:
    return _json(_ref("Error"), description)


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_ISO = {"type": "string", "example": "2026-02-10T14:30:00.000Z",
        "description": "ISO 8601 UTC with milliseconds"}
_ISO_NULL = {**_ISO, "nullable": True}
_STR_NULL = {"type": "string", "nullable": True}
_E400 = _err("A parameter or the body is invalid; `parameter` names it.")
_E503 = _err("The database is missing, unreadable, read-only for writes, or busy (then with "
             "`Retry-After`); nothing is created.")
_AUTH = {
    "401": _err("Missing or wrong bearer token."),
    "403": _err("Writes are disabled: no API token is configured."),
    "429": _err("Too many wrong tokens from this client: retry after `Retry-After` seconds."),
}
_TIME_DESC = ("UTC time: `YYYY-MM-DD[ HH:MM[:SS[.fff]]]`, the same with `T` and an offset or `Z`, "
              "or epoch milliseconds.")
_TIME = {"type": "string", "minLength": 1, "pattern": TIME_PATTERN}
_ASSET_Q = _q("asset", {"type": "string", "minLength": 1, "maxLength": 200, "pattern": TEXT_PATTERN},
              "Only this asset (404 when unknown).")
_LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "Items per page (1-1000).")
_CURSOR = _q("cursor", {"type": "string", "minLength": 1, "maxLength": 200,
                        "pattern": TEXT_PATTERN},
             "Opaque position from the previous page's `next` link.")
_ALARM_PATH = {"name": "alarm_id", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 0}}
# optional body fields: null is the same as absent
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "nullable": True}
_NOTE = {"type": "string", "minLength": 1, "maxLength": MAX_NOTE, "nullable": True}


def _page(item: str) -> dict:
    return {"type": "object", "required": ["items", "next"], "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": _ref(item)},
                           "next": {"type": "string", "nullable": True,
                                    "description": "URL of the next page; null on the last."}}}


def alarm_schemas() -> dict:
    """Components: Alarm, AlarmPage, Suppression(Page), AuditEntry/AuditPage, AlarmSummary,
    AlarmRates."""
    source = {"type": "object", "properties": {"asset_id": {"type": "string"},
                                               "rule": {"type": "string"}}}
    return {
        "Alarm": {
            "type": "object",
            "description": ("One alarm, the same shape as `twin alarms --json`. ISA-18.2: "
                            "`isa_state` is active/cleared x unacknowledged/acknowledged; a "
                            "cleared alarm stands until acknowledged. `suppressed`: shelved or "
                            "out of service (now, for a standing alarm; as recorded otherwise)."),
            "required": ["id", "asset_id", "rule", "sensor", "severity", "state", "message",
                         "started_at", "last_seen", "ended_at", "peak_value", "trigger_count",
                         "acked", "acked_by", "acked_at", "ack_note", "isa_state", "suppressed",
                         "suppressed_until", "needs_action"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "integer"},
                "asset_id": {"type": "string"},
                "rule": {"type": "string"},
                "sensor": _STR_NULL,
                "severity": {"type": "string", "enum": ["warning", "critical"]},
                "state": {"type": "string", "enum": ["active", "cleared"]},
                "message": {"type": "string"},
                "started_at": _ISO,
                "last_seen": _ISO,
                "ended_at": _ISO_NULL,
                "peak_value": {"type": "number", "nullable": True},
                "trigger_count": {"type": "integer"},
                "acked": {"type": "boolean"},
                "acked_by": _STR_NULL,
                "acked_at": _ISO_NULL,
                "ack_note": _STR_NULL,
                "isa_state": {"type": "string", "enum": [
                    "active_unacknowledged", "active_acknowledged", "cleared_unacknowledged",
                    "cleared_acknowledged"]},
                "suppressed": {"type": "string", "nullable": True,
                               "enum": ["shelved", "out_of_service", None]},
                "suppressed_until": _ISO_NULL,
                "needs_action": {"type": "boolean",
                                 "description": "Standing, unacknowledged and not suppressed."},
            },
        },
        "AlarmPage": _page("Alarm"),
        "Suppression": {
            "type": "object",
            "required": ["id", "kind", "asset_id", "rule", "reason", "by", "started_at",
                         "expires_at", "ended_at", "ended_by", "in_force"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "integer"},
                "kind": {"type": "string", "enum": ["shelved", "out_of_service"]},
                "asset_id": {"type": "string"},
                "rule": {**_STR_NULL, "description": "null: every rule of the asset"},
                "reason": {"type": "string"},
                "by": {"type": "string"},
                "started_at": _ISO,
                "expires_at": {**_ISO_NULL, "description": "A shelf's expiry (null: until returned)"},
                "ended_at": _ISO_NULL,
                "ended_by": _STR_NULL,
                "in_force": {"type": "boolean"},
            },
        },
        "SuppressionPage": _page("Suppression"),
        "AuditEntry": {
            "type": "object",
            "required": ["id", "at", "by", "action", "alert_id", "asset_id", "rule", "note",
                         "detail"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "integer"},
                "at": _ISO,
                "by": {"type": "string"},
                "action": {"type": "string", "enum": list(AUDIT_ACTIONS)},
                "alert_id": {"type": "integer", "nullable": True},
                "asset_id": _STR_NULL,
                "rule": _STR_NULL,
                "note": _STR_NULL,
                "detail": {"type": "object", "nullable": True},
            },
        },
        "AuditPage": _page("AuditEntry"),
        "AlarmSummary": {
            "type": "object",
            "required": ["standing", "active", "unacknowledged", "unacknowledged_cleared",
                         "shelved", "out_of_service"],
            "properties": {k: {"type": "integer"} for k in (
                "standing", "active", "unacknowledged", "unacknowledged_cleared", "shelved",
                "out_of_service")},
        },
        "AlarmRates": {
            "type": "object",
            "description": "EEMUA 191 alarm-rate figures (twinlib.detect.alarm_rates).",
            "required": ["start", "end", "hours", "operators", "alarms", "suppressed",
                         "per_operator_hour", "per_10min_average", "windows_10min", "peak_10min",
                         "flood_windows", "flood_percent", "standing", "chattering",
                         "bad_actors", "top_share_percent", "targets", "rating"],
            "properties": {
                "start": _ISO, "end": _ISO, "hours": {"type": "number"},
                "operators": {"type": "integer"},
                "alarms": {"type": "integer", "description": "Annunciated alarms raised."},
                "suppressed": {"type": "integer"},
                "per_operator_hour": {"type": "number"},
                "per_10min_average": {"type": "number"},
                "windows_10min": {"type": "integer"},
                "peak_10min": {"type": "object", "required": ["alarms", "start"],
                               "properties": {"alarms": {"type": "integer"},
                                              "start": _ISO_NULL}},
                "flood_windows": {"type": "integer"},
                "flood_percent": {"type": "number"},
                "standing": {"type": "array", "items": source},
                "chattering": {"type": "array", "items": source},
                "bad_actors": {"type": "array", "items": source},
                "top_share_percent": {"type": "number"},
                "targets": {"type": "object"},
                "rating": {"type": "object"},
            },
        },
    }


def alarm_paths() -> dict:
    """The alarm operations."""
    state = _q("state", {"type": "string", "enum": list(HISTORY_STATES)},
               "Only this state: `active`, `cleared`, `acked`, `unacked`, `standing` (active or "
               "unacknowledged), `attention` (standing and not suppressed), `shelved`, "
               "`out_of_service`, `suppressed`.")
    target_ok = {"200": _json(_ref("Suppression"), "The shelf / out-of-service entry."),
                 "400": _E400, **_AUTH, "404": _err("Unknown asset, or nothing to end."),
                 "503": _E503}

    def body(props: dict, required: list, example: dict) -> dict:
        return {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": required, "properties": props},
            "example": example}}}

    asset_rule = {"asset_id": {"type": "string", "minLength": 1, "maxLength": 200},
                  "rule": {"type": "string", "minLength": 1, "maxLength": MAX_NAME,
                           "nullable": True},
                  "by": {**_NAME, "description": "Who (when no user is logged in)."}}
    return {
        "/alarms": {"get": {
            "summary": "Alarms, newest first.",
            "operationId": "listAlarms",
            "tags": ["alarms"],
            "parameters": [
                state, _ASSET_Q,
                _q("acked", {"type": "string", "enum": ["true", "false", "1", "0"]},
                   "Only acknowledged (`true`) or unacknowledged (`false`) alarms."),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                   "How many alarms per page (1-1000)."),
                _CURSOR,
            ],
            "responses": {"200": {**_json({"type": "array", "items": _ref("Alarm")},
                                          "The alarms; the next page's URL in the `Link` header "
                                          "(`rel=\"next\"`), none on the last page."),
                                  "headers": {"Link": {"schema": {"type": "string"},
                                                       "description": "`<url>; rel=\"next\"`"}}},
                          "400": _E400, "404": _err("Unknown asset."), "503": _E503},
        }},
        "/alarms/history": {"get": {
            "summary": "Alarm history, newest first, filtered; cursor pages.",
            "operationId": "alarmHistory",
            "tags": ["alarms"],
            "parameters": [
                _ASSET_Q,
                _q("severity", {"type": "string", "enum": ["warning", "critical"]},
                   "Only this severity."),
                state,
                _q("rule", {"type": "string", "minLength": 1, "maxLength": 200,
                            "pattern": TEXT_PATTERN}, "Only this rule."),
                _q("since", _TIME, "Alarms still going at or after this time. " + _TIME_DESC),
                _q("until", _TIME, "Alarms raised before this time. " + _TIME_DESC),
                _CURSOR, _LIMIT,
            ],
            "responses": {"200": _json(_ref("AlarmPage"), "One page of alarms."),
                          "400": _E400, "404": _err("Unknown asset."), "503": _E503},
        }},
        "/alarms/summary": {"get": {
            "summary": "Standing alarms by ISA-18.2 state (the header's counts).",
            "operationId": "alarmSummary",
            "tags": ["alarms"],
            "responses": {"200": _json(_ref("AlarmSummary"), "The counts."), "503": _E503},
        }},
        "/alarms/{alarm_id}": {"get": {
            "summary": "One alarm.",
            "operationId": "getAlarm",
            "tags": ["alarms"],
            "parameters": [_ALARM_PATH],
            "responses": {"200": _json(_ref("Alarm"), "The alarm."),
                          "404": _err("Unknown alarm."), "503": _E503},
        }},
        "/alarms/{alarm_id}/ack": {"post": {
            "summary": "Acknowledge an alarm, with an optional note.",
            "description": ("Who: the logged-in user (HTTP basic / REMOTE_USER), else `by`, else "
                            "the configured user (`TWIN_USER`, `[alarms] user`), else `api`. "
                            "Acknowledging twice keeps the first acknowledgement."),
            "operationId": "acknowledgeAlarm",
            "tags": ["alarms"],
            "security": [{"bearerAuth": []}],
            "parameters": [_ALARM_PATH],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"by": {**_NAME, "description": "Who acknowledges."},
                                   "note": {**_NOTE, "description": "Why / what was done."}},
                }}},
            },
            "responses": {"200": _json(_ref("Alarm"), "The acknowledged alarm."),
                          "400": _E400, **_AUTH, "404": _err("Unknown alarm."), "503": _E503},
        }},
        "/alarms/shelve": {"post": {
            "summary": "Shelve an asset's rule for a time, with a reason.",
            "description": ("Its alarms are still recorded, flagged `shelved`, not notified and "
                            "not counted as needing action until the shelf expires or is "
                            f"removed. At most {MAX_SHELVE_S} s (7 days); a shelf in force is "
                            "replaced."),
            "operationId": "shelveAlarm",
            "tags": ["alarms"],
            "security": [{"bearerAuth": []}],
            "requestBody": body({**asset_rule,
                                 "reason": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE},
                                 "duration": {"oneOf": [{"type": "number"}, {"type": "string"}],
                                              "description": 'Seconds, or text: "30min", "2h".'}},
                                ["asset_id", "rule", "reason", "duration"],
                                {"asset_id": "pump-01", "rule": "vibration_high",
                                 "reason": "bearing swap", "duration": "2h"}),
            "responses": target_ok,
        }},
        "/alarms/unshelve": {"post": {
            "summary": "Remove the shelf from an asset's rule now.",
            "operationId": "unshelveAlarm",
            "tags": ["alarms"],
            "security": [{"bearerAuth": []}],
            "requestBody": body({**asset_rule, "note": _NOTE}, ["asset_id", "rule"],
                                {"asset_id": "pump-01", "rule": "vibration_high"}),
            "responses": target_ok,
        }},
        "/alarms/out-of-service": {"post": {
            "summary": "Take an asset (no `rule`: every rule) or one rule out of service.",
            "operationId": "setOutOfService",
            "tags": ["alarms"],
            "security": [{"bearerAuth": []}],
            "requestBody": body({**asset_rule,
                                 "reason": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE}},
                                ["asset_id", "reason"],
                                {"asset_id": "pump-01", "reason": "overhaul"}),
            "responses": target_ok,
        }},
        "/alarms/return-to-service": {"post": {
            "summary": "Return an asset (or one rule) to service.",
            "operationId": "returnToService",
            "tags": ["alarms"],
            "security": [{"bearerAuth": []}],
            "requestBody": body({**asset_rule, "note": _NOTE}, ["asset_id"],
                                {"asset_id": "pump-01"}),
            "responses": target_ok,
        }},
        "/alarms/suppressions": {"get": {
            "summary": "Shelves and out-of-service entries, newest first.",
            "operationId": "listSuppressions",
            "tags": ["alarms"],
            "parameters": [
                _ASSET_Q,
                _q("in_force", {"type": "string", "enum": ["true", "false", "1", "0"]},
                   "`true` (default): those in force now; `false`: all."),
                _LIMIT,
            ],
            "responses": {"200": _json(_ref("SuppressionPage"), "The entries."),
                          "400": _E400, "404": _err("Unknown asset."), "503": _E503},
        }},
        "/alarms/audit": {"get": {
            "summary": "The alarm audit log, newest first; cursor pages.",
            "description": "Acks, shelves, unshelves, out-of-service changes, rule changes.",
            "operationId": "alarmAudit",
            "tags": ["alarms"],
            "parameters": [
                _ASSET_Q,
                _q("action", {"type": "string", "enum": list(AUDIT_ACTIONS)}, "Only this action."),
                _q("alarm_id", {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999},
                   "Only this alarm."),
                _q("since", _TIME, "From this time. " + _TIME_DESC),
                _q("until", _TIME, "Before this time. " + _TIME_DESC),
                _CURSOR, _LIMIT,
            ],
            "responses": {"200": _json(_ref("AuditPage"), "One page of entries."),
                          "400": _E400, "503": _E503},
        }},
        "/alarms/rates": {"get": {
            "summary": "EEMUA 191 alarm-rate figures for a time range (default: the last 24 h).",
            "operationId": "alarmRates",
            "tags": ["alarms"],
            "parameters": [
                _q("since", _TIME, "Range start. " + _TIME_DESC),
                _q("until", _TIME, "Range end (default now). " + _TIME_DESC),
                _q("operators", {"type": "integer", "minimum": 1, "maximum": 1000},
                   "Operator positions (default `[alarms] operators`, else 1)."),
                _q("top", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                   "Top sources listed."),
            ],
            "responses": {"200": _json(_ref("AlarmRates"), "The figures."),
                          "400": _E400, "503": _E503},
        }},
    }
