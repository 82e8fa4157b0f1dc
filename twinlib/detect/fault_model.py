"""The trained fault model as one more alarm rule, for the kinds it was trained on.

``[rules] fault_model = true`` (or the name of a model file in the models directory, e.g.
``"fault_detection_xgb"``) makes the alarm engine — ``twin detect`` and the live monitor alike —
run :class:`twinlib.models.alarm_rule.FaultModelRule` for every asset whose kind has a trained
model: a model card in the models directory whose features were built from exactly that kind's
measured signals (and some of its state signals). ``true`` prefers the RandomForest
(``fault_detection_rf``, the model the rule's defaults were chosen for), then XGBoost, then any
other matching card. The rule's levels come from ``[fault_model]`` (level, hold_s, clear_s).

Default off: the evaluation on random-schedule fleets (``twin evaluate``) is where its false
alarms per pump-day are measured; turn it on once they are acceptable for your plant. The model
file is verified against its card before it is unpickled (:func:`twinlib.models.cards.load_model`);
a model that fails the check stops the engine from starting, with the reason.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from twinlib.kinds import Kind

__all__ = ["fault_model_setting", "find_fault_model", "fault_model_rules", "operating_model"]

log = logging.getLogger("twinlib.detect")
CARD_SUFFIX = ".card.json"
#: Which model ``fault_model = true`` prefers, in order.
PREFERRED = ("fault_detection_rf", "fault_detection_xgb")


def fault_model_setting(file: Mapping | None) -> bool | str:
    """``[rules] fault_model`` of a settings mapping: False (default), True, or a model name."""
    value = ((file or {}).get("rules", {}) or {}).get("fault_model", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip().removesuffix(".pkl")
    raise ValueError(f"settings: [rules] fault_model must be true, false or a model name, "
                     f"got {value!r}")


def operating_model(candidates, file: Mapping | None) -> tuple[str, str]:
    """Of evaluated model kinds (``"rf"``, ``"xgb"``, …), the one the alarm engine runs, and why.

    The same choice as :func:`find_fault_model`: the model ``[rules] fault_model`` names, else
    the first of :data:`PREFERRED`. It is decided by the settings, never by the scores being
    reported, so an evaluation cannot pick the model its own test fleets happen to favour (the
    preference itself was set on the development seeds; see
    :mod:`twinlib.models.alarm_rule`)."""
    from twinlib.models.classifiers import MODEL_KINDS

    kinds = list(candidates)
    if not kinds:
        raise ValueError("operating_model: no model was evaluated")
    name_of = {k: MODEL_KINDS.get(k, k) for k in kinds}
    try:
        wanted = fault_model_setting(file)
    except ValueError:
        wanted = True
    if isinstance(wanted, str):
        # "fault_detection_rf" or a kind's own "fault_detection_rf.<kind>"
        for k, name in name_of.items():
            if wanted == name or wanted.startswith(name + "."):
                return k, f"[rules] fault_model = {wanted!r}"
    by_name = {name: k for k, name in name_of.items()}
    stem = next((s for s in PREFERRED if s in by_name), None)
    if stem is None:
        return kinds[0], "the only evaluated model"
    why = ("the alarm engine's preference (the RandomForest first: the alarm settings were "
           "chosen for it on the development seeds)")
    if isinstance(wanted, str):
        why = f"[rules] fault_model = {wanted!r} is not among the evaluated models; {why}"
    return by_name[stem], why


def _card_fits(card: Mapping, kind: Kind) -> bool:
    spec = card.get("feature_spec") or {}
    sensors = spec.get("sensors")
    if not sensors:
        return False
    return set(sensors) == set(kind.measured) and set(spec.get("state") or ()) <= set(kind.state)


def find_fault_model(models_dir: str | Path, kind: Kind, name: bool | str = True) -> Path | None:
    """The model file for ``kind`` in ``models_dir`` (see the module docstring), or None."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return None
    found: dict[str, Path] = {}
    for card_file in sorted(folder.glob(f"*{CARD_SUFFIX}")):
        stem = card_file.name[: -len(CARD_SUFFIX)]
        try:
            card = json.loads(card_file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and _card_fits(card, kind):
            found[stem] = folder / f"{stem}.pkl"
    if isinstance(name, str):
        return found.get(name)
    for stem in PREFERRED:
        if stem in found:
            return found[stem]
    return next(iter(found.values()), None)


def fault_model_rules(settings, *, models_dir: str | Path | None = None
                      ) -> Callable[[Kind], tuple] | None:
    """``extra_for_kind`` for :class:`twinlib.detect.AlarmEngine`: the fault-model rule of each
    kind that has a trained model, when ``[rules] fault_model`` enables it (else None)."""
    file = settings.file if settings is not None else {}
    wanted = fault_model_setting(file)
    if wanted is False:
        return None
    folder = Path(models_dir if models_dir is not None else settings.models_dir)

    def for_kind(kind: Kind) -> tuple:
        from twinlib.models.alarm_rule import FaultModelRule, FaultRuleSettings
        from twinlib.models.scoring import ModelScorer

        path = find_fault_model(folder, kind, wanted)
        if path is None:
            log.warning("fault_model is on, but %s holds no trained model for kind %r%s: the "
                        "fault-model rule is off for it", folder, kind.name,
                        f" named {wanted!r}" if isinstance(wanted, str) else "")
            return ()
        return (FaultModelRule(FaultRuleSettings.from_settings(file),
                               scorer=ModelScorer.load(path)),)

    return for_kind
