"""Which optional extra of the package provides an importable module.

The core install (``pip install twinlib``) is the simulator, the store, validation, detection and
the ``twin`` command; each service adds its extra (``api``, ``dashboard``, ``ml``, ``notebooks``,
``plant``, ``postgres``, or ``all``; docs/DESIGN.md "Packaging"). Modules of an extra are
imported only where they are used, so a command that needs a missing one fails with
:func:`missing_extra_message` instead of a traceback. tests/deploy/test_packaging.py checks this
table against pyproject.toml.
"""
from __future__ import annotations

__all__ = ["MODULE_EXTRAS", "missing_extra_message"]

#: top-level module → (distribution that provides it, extra that installs it)
MODULE_EXTRAS: dict[str, tuple[str, str]] = {
    "flask": ("flask", "api"),
    "gunicorn": ("gunicorn", "api"),
    "orjson": ("orjson", "api"),
    "apispec": ("apispec", "api"),
    "flask_cors": ("flask-cors", "api"),
    "flask_compress": ("flask-compress", "api"),
    "swagger_ui_bundle": ("swagger-ui-bundle", "api"),
    "prometheus_client": ("prometheus-client", "api"),
    "pythonjsonlogger": ("python-json-logger", "api"),
    "voila": ("voila", "dashboard"),
    "jupyter_server": ("jupyter-server", "dashboard"),
    "ipywidgets": ("ipywidgets", "dashboard"),
    "bqplot": ("bqplot", "dashboard"),
    "ipykernel": ("ipykernel", "dashboard"),
    "sklearn": ("scikit-learn", "ml"),
    "xgboost": ("xgboost-cpu", "ml"),
    "joblib": ("joblib", "ml"),
    "matplotlib": ("matplotlib", "ml"),
    "jupyterlab": ("jupyterlab", "notebooks"),
    "papermill": ("papermill", "notebooks"),
    "nbformat": ("nbformat", "notebooks"),
    "paho": ("paho-mqtt", "plant"),
    "asyncua": ("asyncua", "plant"),
    "pymodbus": ("pymodbus", "plant"),
    "google": ("protobuf", "plant"),
    "psycopg": ("psycopg", "postgres"),
}


def missing_extra_message(exc: ImportError) -> str | None:
    """What to install when ``exc`` says a module of an extra is missing (None: not one of
    ours, let it propagate)."""
    name = getattr(exc, "name", None) or ""
    found = MODULE_EXTRAS.get(name.split(".")[0])
    if found is None:
        return None
    dist, extra = found
    return (f"this needs {dist}, which is not installed: install the {extra!r} extra, "
            f"pip install 'twinlib[{extra}]' (or 'twinlib[all]' for every service)")
