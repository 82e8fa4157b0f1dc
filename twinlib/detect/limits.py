"""The alarm limits in force for an asset: one call for the API, the dashboard and anyone else.

:func:`limits_in_force` answers "which levels does the alarm engine apply to this asset's signals
right now, and where do they come from?" It builds the asset's rules the way the engine does (a
:class:`~twinlib.detect.rules.RuleBook` from the settings: the kind's limits, the settings file's
``[thresholds]``, ``[rules] learn_limits_hours``) and, for learned limits, reads what the engine
learned from the store: ``detect.limits.<asset>`` (median and robust σ per signal, and the
training window), written once when the asset's first N hours are over; while they are not, the
window's start from the engine's state (``detect.state``). The levels themselves are read off the
rules (:func:`~twinlib.detect.rules.ruleset_limits`), so the page, the API and the alarms cannot
disagree.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from twinlib.timeutil import format_iso

from .engine import LIMITS_KEY, STATE_KEY, _rulebook, _stored_kind
from .rules import LimitInForce, ruleset_limits

__all__ = ["limits_in_force", "learned_record", "limits_json", "LimitInForce"]

log = logging.getLogger(__name__)

#: What a signal without any level rule on one side has.
SIDES = ("high", "low")


def _json(raw) -> dict | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        log.warning("unreadable learned-limit record in the store: %.80r", raw)
        return None
    return value if isinstance(value, dict) else None


def learned_record(store, asset_id: str) -> dict | None:
    """What the engine learned for the asset: ``{"from", "to", "bands"}`` (``bands`` None while
    it is still learning, ``from`` None before it has seen a reading); None when it never ran."""
    rec = _json(store.get_meta(LIMITS_KEY + asset_id))
    if rec is not None:
        train = rec.get("train") or {}
        return {"from": train.get("from"), "to": train.get("to"),
                "bands": dict(rec.get("bands") or {})}
    # not learned yet (or a store from before the record): the engine's own bookkeeping
    state = (_json(store.get_meta(STATE_KEY)) or {}).get(asset_id) or {}
    info = state.get("limits") or {} if isinstance(state, dict) else {}
    if not info:
        return None
    learned = info.get("status") is not None
    return {"from": info.get("first_ts"), "to": info.get("train_end") if learned else None,
            "bands": dict(info.get("bands") or {}) if learned else None}


def limits_in_force(store, asset_id: str, rules=None, *, settings=None,
                    stored_kind: str | None = None) -> dict[str, dict[str, LimitInForce | None]]:
    """The level limits the alarm engine applies to ``asset_id``, per measured signal and side.

    Returns ``{signal: {"high": LimitInForce | None, "low": LimitInForce | None}}`` for every
    measured signal of the asset's kind, in the kind's order (None: no level on that side).
    ``rules`` / ``settings`` as for :class:`~twinlib.detect.AlarmEngine` (a
    :class:`twinlib.config.Settings` decides kinds as the monitor's engine does; a settings
    mapping or a RuleBook work too; neither: the built-in defaults).
    """
    book = _rulebook(rules, settings)
    if stored_kind is None:
        stored_kind = _stored_kind(store, asset_id)
    ruleset = book.for_asset(asset_id, stored_kind)
    kind = book.kind_for(asset_id, stored_kind)
    file = getattr(book, "file", None)
    learned = learned_record(store, asset_id) if ruleset.learned else None
    found = ruleset_limits(ruleset, file=file, asset_id=asset_id, learned=learned)
    out = {s: {side: found.get(s, {}).get(side) for side in SIDES} for s in kind.measured}
    for s, sides in found.items():          # a rule on a signal the kind does not list (none today)
        out.setdefault(s, {side: sides.get(side) for side in SIDES})
    return out


def limits_json(limits: Mapping[str, Mapping[str, LimitInForce | None]]) -> dict:
    """:func:`limits_in_force` as JSON: the fields that apply, times as ISO 8601 UTC."""
    out: dict = {}
    for signal, sides in limits.items():
        out[signal] = {}
        for side in SIDES:
            lim = sides.get(side)
            if lim is None:
                out[signal][side] = None
                continue
            d = lim.to_dict()
            d.pop("signal", None)
            d.pop("side", None)
            for key in ("learned_from", "learned_to"):
                if key in d:
                    d[key] = format_iso(d[key])
            out[signal][side] = d
    return out
