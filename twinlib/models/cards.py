"""Model cards, and the only way twinlib loads a model file: hash-verified, version-checked.

A model file ``fault_detection_rf.pkl`` sits beside its card ``fault_detection_rf.card.json``
(features, classes, metrics, training-data fingerprint, library versions, creation time, split,
SHA-256 of the model file). Unpickling runs code, so :func:`load_model` reads the bytes once,
checks their SHA-256 against the card *before* unpickling, and refuses a file whose card is missing
(unknown file) or whose hash differs (modified file), and a card written for another file name or
model kind (a model and card pair copied over another kind's names). A model built with another
feature set is refused, and so is one whose feature code (``features.py``, ``twin.py``) has
changed since (its pickled twin and feature builder would compute something else); one saved
under other library versions triggers :class:`ModelVersionWarning` (or is refused with ``strict=True``).

The card is a checksum, not a signature: someone who can rewrite both files can replace both.
Keep the models directory writable only by the account that trains.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import joblib

from twinlib.models.features import FEATURE_VERSION, FeatureSpec

__all__ = [
    "CARD_SUFFIX",
    "ModelCardError",
    "UnknownModelError",
    "ModelIntegrityError",
    "ModelMismatchError",
    "ModelVersionWarning",
    "card_path",
    "sha256_bytes",
    "library_versions",
    "feature_code_sha256",
    "save_model",
    "read_card",
    "load_model",
    "card_asset_kind",
]

CARD_SUFFIX = ".card.json"

# Libraries whose pickles are only trusted between identical major.minor versions.
_CHECKED_LIBRARIES = ("numpy", "pandas", "sklearn", "xgboost", "joblib")


class ModelCardError(Exception):
    """A model file cannot be used; the message says why and what to do."""


class UnknownModelError(ModelCardError):
    """The model file or its card is missing or unreadable: the file is not one twinlib wrote."""


class ModelIntegrityError(ModelCardError):
    """The model file's SHA-256 differs from the one its card recorded: it was modified."""


class ModelMismatchError(ModelCardError):
    """The model was trained with other features (or, strictly, other library versions)."""


class ModelVersionWarning(UserWarning):
    """The model was saved under other library versions; predictions may differ."""


def card_path(model_path: str | os.PathLike) -> Path:
    """The card file that belongs to ``model_path`` (``x.pkl`` → ``x.card.json``)."""
    path = Path(model_path)
    stem = path.name[:-4] if path.name.endswith(".pkl") else path.name
    return path.with_name(stem + CARD_SUFFIX)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a model pickle depends on."""
    import numpy
    import pandas
    import sklearn

    versions = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "sklearn": sklearn.__version__,
        "joblib": joblib.__version__,
    }
    try:
        import xgboost

        versions["xgboost"] = xgboost.__version__
    except ImportError:  # the RF model does not need it
        versions["xgboost"] = None
    return versions


def feature_code_sha256() -> str:
    """SHA-256 over the source of the code that computes features (features module + twin).

    A pickled model carries a fitted :class:`~twinlib.twin.TwinModel` and a feature builder;
    if their code changed, unpickling may fail or, worse, compute different features quietly.
    """
    import twinlib.models.features as features
    import twinlib.twin as twin

    digest = hashlib.sha256()
    for module in (features, twin):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model, path: str | os.PathLike, card: dict) -> dict:
    """Pickle ``model`` with joblib to ``path`` and write its card; returns the full card.

    ``card`` holds the training facts (features, classes, metrics, fingerprint, split…); this
    function adds ``model_file``, ``sha256``, ``library_versions``, ``feature_version`` and
    ``created_at``. Both files are written atomically, model first, so a reader never sees a
    card that describes a file not yet in place.
    """
    path = Path(path)
    buf = io.BytesIO()
    joblib.dump(model, buf, compress=3)
    data = buf.getvalue()
    full = dict(card)
    full.update(
        model_file=path.name,
        sha256=sha256_bytes(data),
        size_bytes=len(data),
        library_versions=library_versions(),
        feature_version=FEATURE_VERSION,
        feature_code_sha256=feature_code_sha256(),
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
    )
    _atomic_write(path, data)
    _atomic_write(card_path(path), (json.dumps(full, indent=2, sort_keys=True) + "\n").encode())
    return full


def record_evaluation(model_path: str | os.PathLike, evaluation: dict) -> dict:
    """Write ``evaluation`` (figures measured after training) into the card of ``model_path``.

    The card's ``sha256`` is that of the model file, which this does not touch, so the model
    still loads; the training facts are left as they were.
    """
    card = read_card(model_path)
    card["evaluation"] = evaluation
    _atomic_write(card_path(model_path),
                  (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    return card


def read_card(model_path: str | os.PathLike) -> dict:
    """The parsed card of ``model_path``; :class:`UnknownModelError` when absent or unreadable."""
    cpath = card_path(model_path)
    try:
        card = json.loads(cpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnknownModelError(
            f"{model_path}: no model card {cpath.name} beside it; refusing to unpickle an unknown "
            "file (retrain with `twin train`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise UnknownModelError(f"{cpath}: unreadable model card ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise UnknownModelError(f"{cpath}: model card has no sha256; refusing the model file")
    return card


def _check_features(card: dict, model_path) -> None:
    if card.get("feature_version") != FEATURE_VERSION:
        raise ModelMismatchError(
            f"{model_path}: trained with feature version {card.get('feature_version')}, this "
            f"twinlib computes version {FEATURE_VERSION}; retrain with `twin train`"
        )
    if card.get("feature_code_sha256") != feature_code_sha256():
        raise ModelMismatchError(
            f"{model_path}: the feature code (twinlib/models/features.py, twinlib/twin.py) changed "
            "since this model was trained; retrain with `twin train`"
        )
    try:
        expected = FeatureSpec(**card.get("feature_spec", {})).names()
    except (TypeError, ValueError) as exc:
        raise ModelMismatchError(f"{model_path}: card has an invalid feature_spec ({exc})") from None
    if card.get("features") != expected:
        raise ModelMismatchError(
            f"{model_path}: the card's feature list differs from the features this twinlib "
            "computes; retrain with `twin train`"
        )


def retrain_reason(model_path: str | os.PathLike) -> str | None:
    """Why the model at ``model_path`` must be (re)trained before use, or None when it can be
    loaded: the file or its card is missing or unreadable, or it was trained on other features
    than this twinlib computes (an upgrade). Cheap: the card only, nothing unpickled. A file
    modified after training is not a reason to retrain over it (:func:`load_model` refuses it,
    naming the digest)."""
    path = Path(model_path)
    if not path.exists():
        return f"{path.name} missing"
    try:
        card = read_card(path)
        _check_features(card, path)
    except (UnknownModelError, ModelMismatchError) as exc:
        return str(exc)
    return None


def _major_minor(version: str | None) -> tuple:
    if not version:
        return ()
    return tuple(version.split(".")[:2])


def _check_versions(card: dict, model_path, strict: bool) -> list[str]:
    saved = card.get("library_versions") or {}
    now = library_versions()
    diffs = [
        f"{lib} {saved.get(lib)} (now {now.get(lib)})"
        for lib in _CHECKED_LIBRARIES
        if saved.get(lib) and _major_minor(saved.get(lib)) != _major_minor(now.get(lib))
    ]
    if diffs:
        message = f"{model_path}: saved under other library versions: " + ", ".join(diffs)
        if strict:
            raise ModelMismatchError(message + "; retrain with `twin train`")
        warnings.warn(message + "; predictions may differ, retrain to be sure",
                      ModelVersionWarning, stacklevel=3)
    return diffs


def card_asset_kind(card: dict) -> str:
    """The asset kind a card's model was trained for (cards from before kinds: the pump)."""
    return str(card.get("asset_kind") or "pump")


def load_model(model_path: str | os.PathLike, *, strict: bool = False,
               asset_kind: str | None = None):
    """Load a model that twinlib saved, after verifying it; returns ``(model, card)``.

    Raises :class:`UnknownModelError` (no file / no card), :class:`ModelIntegrityError` (SHA-256
    differs: modified file), :class:`ModelMismatchError` (other feature set; a model trained for
    another asset kind than ``asset_kind``, when given; with ``strict=True`` also other library
    versions). Otherwise warns with :class:`ModelVersionWarning` on a library version difference.
    """
    path = Path(model_path)
    card = read_card(path)
    if asset_kind is not None and card_asset_kind(card) != str(asset_kind):
        signals = [s["name"] for s in (card.get("signals") or {}).get("measured", [])]
        raise ModelMismatchError(
            f"{path}: trained for asset kind {card_asset_kind(card)!r}"
            + (f" (signals {', '.join(signals)})" if signals else "")
            + f", not for kind {asset_kind!r}; train one with `twin train --kind {asset_kind}`")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UnknownModelError(f"{path}: model file missing (train with `twin train`)") from None
    digest = sha256_bytes(data)
    if digest != card["sha256"]:
        raise ModelIntegrityError(
            f"{path}: SHA-256 {digest[:16]}… differs from its card ({card['sha256'][:16]}…); the "
            "file was modified after training — refusing to unpickle it"
        )
    _check_identity(card, path)
    _check_features(card, path)
    _check_versions(card, path, strict)
    # Unpickle the very bytes that were hashed, so the file cannot change in between.
    model = joblib.load(io.BytesIO(data))
    if list(getattr(model, "feature_names_", [])) != card.get("features"):
        raise ModelMismatchError(f"{path}: the model's features differ from its card's")
    kind = getattr(model, "kind", None)
    if card.get("kind") is not None and kind is not None and kind != card["kind"]:
        raise ModelMismatchError(f"{path}: the model is a {kind!r} model, its card says "
                                 f"{card['kind']!r}")
    return model, card


def _check_identity(card: dict, path: Path) -> None:
    """The card must describe *this* file: a model and card copied over another kind's names
    (say the XGBoost pair renamed to the RandomForest's) hash correctly but are the wrong
    model."""
    if card.get("model_file") != path.name:
        raise ModelMismatchError(
            f"{path}: its card was written for {card.get('model_file')!r}, not {path.name!r} "
            "(files swapped or renamed?) — refusing it; retrain with `twin train`")
    from twinlib.models.classifiers import MODEL_KINDS

    stem = path.name[:-4] if path.name.endswith(".pkl") else path.name
    stem, _, named_kind = stem.partition(".")  # fault_detection_rf.<asset kind>.pkl
    expected = {s: k for k, s in MODEL_KINDS.items()}.get(stem)
    if expected is not None and card.get("kind") is not None and card["kind"] != expected:
        raise ModelMismatchError(
            f"{path}: the file name says a {expected!r} model, its card says {card['kind']!r} "
            "— refusing it; retrain with `twin train`")
    if expected is not None and (named_kind or "pump") != card_asset_kind(card):
        raise ModelMismatchError(
            f"{path}: the file name says asset kind {named_kind or 'pump'!r}, its card says "
            f"{card_asset_kind(card)!r} — refusing it; retrain with `twin train --kind …`")
