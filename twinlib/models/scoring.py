"""Class probabilities for new readings in the store: what the fault-model alarm rule reads.

:class:`ModelScorer` is the ``scorer`` of :class:`~twinlib.models.alarm_rule.FaultModelRule`
inside the alarm engine: for a chunk of new readings it reads each asset's history back to the
features' baseline window, computes the (causal) features, and returns, for the readings on its
scoring stride (every ``every_s`` seconds of data time, so batch and live agree), the class
probabilities and the evidence features. Other readings get nothing, which leaves the rule's
state unchanged.

    from twinlib.detect import AlarmEngine
    from twinlib.models.alarm_rule import FaultModelRule, FaultRuleSettings
    from twinlib.models.scoring import ModelScorer
    rule = FaultModelRule(FaultRuleSettings.from_settings(settings.file),
                          scorer=ModelScorer.load("models/fault_detection_xgb.pkl"))
    engine = AlarmEngine(store, settings.file, model_rules=[rule])
"""
from __future__ import annotations

import numpy as np

__all__ = ["ModelScorer"]

_EVIDENCE = ("flat_run", "jump_ratio", "residual_z", "residual_persist")


class ModelScorer:
    """A fitted :class:`~twinlib.models.classifiers.FaultClassifier` scoring store readings."""

    def __init__(self, model, every_s: int = 5, asset_kind: str | None = None, settings=None):
        if every_s < 1:
            raise ValueError("every_s must be at least 1")
        self.model = model
        self.every_s = int(every_s)
        #: the asset kind the model was trained for; assets of other kinds are not scored
        self.asset_kind = asset_kind
        self.settings = settings
        self._kind_of: dict[str, str] = {}

    @classmethod
    def load(cls, path, *, every_s: int = 5, strict: bool = False,
             asset_kind: str | None = None, settings=None) -> "ModelScorer":
        """A scorer for a saved model (verified through its card; refused when ``asset_kind``
        is given and the model was trained for another kind)."""
        from twinlib.models.cards import card_asset_kind, load_model

        model, card = load_model(path, strict=strict, asset_kind=asset_kind)
        return cls(model, every_s=every_s, asset_kind=card_asset_kind(card), settings=settings)

    def _kinds(self, store) -> dict[str, str]:
        out = {}
        for info in store.assets(counts=False):
            if self.settings is not None:
                out[info["asset_id"]] = self.settings.kind_for(info["asset_id"], info.get("kind")).name
            else:
                out[info["asset_id"]] = info.get("kind") or "pump"
        return out

    def prepare(self, store, rows) -> dict:
        """``{reading id: {"proba": {class: p}, "evidence": {feature: value}}}`` for ``rows``
        (readings of assets of another kind than the model's get nothing)."""
        spec = self.model.builder_.spec
        out: dict = {}
        by_asset: dict[str, list] = {}
        for r in rows:
            if (r.ts // 1000) % self.every_s == 0:
                by_asset.setdefault(r.asset_id, []).append(r)
        if self.asset_kind is not None and by_asset:
            if not set(by_asset) <= set(self._kind_of):  # a new asset: read the kinds again
                self._kind_of = self._kinds(store)
            by_asset = {a: v for a, v in by_asset.items()
                        if self._kind_of.get(a, "pump") == self.asset_kind}
        for asset, mine in by_asset.items():
            lo, hi = min(r.ts for r in mine), max(r.ts for r in mine)
            history = store.window(lo - spec.baseline_s * 1000, hi, asset=asset)
            if history.empty:
                continue
            want = {r.ts: r.id for r in mine}
            pick = history["ts"].isin(list(want)).to_numpy()
            if not pick.any():
                continue
            X = self.model.features(history, rows=np.flatnonzero(pick))
            proba = self.model.predict_proba_features(X)
            classes = [str(c) for c in self.model.classes_]
            names = [c for c in X.columns if c.split("_", 1)[1] in _EVIDENCE]
            ev = X[names].to_numpy(dtype="float64")
            for k, ts in enumerate(history["ts"].to_numpy()[pick]):
                out[want[int(ts)]] = {
                    "proba": dict(zip(classes, proba[k].tolist())),
                    "evidence": {n: float(v) for n, v in zip(names, ev[k]) if np.isfinite(v)},
                }
        return out
