"""Settings and paths for every part of twinlib, decided in one place.

Each setting comes from an explicit argument, else an environment variable, else a default.
Library functions take paths or stores as arguments; only entry points (the CLI, the API
factory, the dashboard notebook) call :func:`get_settings`.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .kinds import BUILTIN_KINDS, DEFAULT_KIND, Kind, KindError, load_kinds

__all__ = [
    "SENSORS",
    "THRESHOLDS",
    "UNITS",
    "PHYSICAL_LIMITS",
    "TS_EARLIEST",
    "TS_MAX_AHEAD_S",
    "Settings",
    "SettingsError",
    "StoreURL",
    "db_location",
    "is_db_url",
    "get_settings",
    "load_settings_file",
]

_PUMP = BUILTIN_KINDS[DEFAULT_KIND]

#: The pump's measured signals (the default kind's), in order. Code that serves any kind asks the
#: asset's :class:`~twinlib.kinds.Kind` instead (``Settings.kind_for``).
SENSORS: tuple[str, ...] = _PUMP.measured

#: The pump's alarm thresholds (the original project's): T > 85 °C, vibration > 0.8, P > 95 bar.
THRESHOLDS: dict[str, float] = _PUMP.thresholds()

UNITS: dict[str, str] = {s: _PUMP.signal(s).unit for s in SENSORS}

#: Values outside these ranges cannot come from a working pump sensor.
PHYSICAL_LIMITS: dict[str, tuple[float, float]] = {s: _PUMP.signal(s).valid for s in SENSORS}

#: Plausibility window for reading timestamps: nothing before TS_EARLIEST, nothing more than
#: TS_MAX_AHEAD_S seconds ahead of the clock. Settings file: ``[ingest] earliest``,
#: ``[ingest] max_ahead_s``.
TS_EARLIEST: str = "2000-01-01"
TS_MAX_AHEAD_S: float = 86_400.0


class SettingsError(ValueError):
    """A setting has a value twinlib cannot use (the message names it)."""


def is_db_url(value) -> bool:
    """True when ``value`` names a PostgreSQL database (``postgresql://…``) rather than a file."""
    return isinstance(value, str) and value.split(":", 1)[0] in ("postgresql", "postgres")


class StoreURL(str):
    """A PostgreSQL connection URL where a database path may stand (``--db``, ``TWIN_DB``).

    ``Path`` would fold its ``//``; this keeps the text and answers the few questions asked of a
    database path (:meth:`exists`, :attr:`name`)."""

    @property
    def name(self) -> str:
        return self.rsplit("/", 1)[-1].split("?", 1)[0] or "postgresql"

    def exists(self) -> bool:
        """True when the server answers and the database holds twinlib's tables."""
        try:
            import psycopg
            with psycopg.connect(str(self), connect_timeout=3) as conn:
                return bool(conn.execute("SELECT to_regclass('readings') IS NOT NULL").fetchone()[0])
        except Exception:
            return False


def db_location(value) -> "Path | StoreURL":
    """A database location: :class:`StoreURL` for a ``postgresql://`` URL, else a ``Path``."""
    if isinstance(value, StoreURL):
        return value
    return StoreURL(value) if is_db_url(value) else Path(value)


# field name -> (environment variable, default, type)
_SPEC: dict[str, tuple[str, Any, type]] = {
    "db_path": ("TWIN_DB", "data/twin.db", Path),
    "data_dir": ("TWIN_DATA_DIR", "data", Path),
    "models_dir": ("TWIN_MODELS_DIR", "models", Path),
    "reports_dir": ("TWIN_REPORTS_DIR", "reports", Path),
    "settings_file": ("TWIN_SETTINGS", "twin.toml", Path),
    "api_host": ("TWIN_API_HOST", "127.0.0.1", str),
    "api_port": ("TWIN_API_PORT", 5000, int),
    "dashboard_port": ("TWIN_DASHBOARD_PORT", 8050, int),
    # Kernels the dashboard runs at once (one per open tab, ~100 MB each); 0 = no limit.
    "dashboard_max_kernels": ("TWIN_DASHBOARD_MAX_KERNELS", None, int),
    "api_token": ("TWIN_API_TOKEN", None, str),
    # The zone the dashboard shows times in (IANA name, e.g. "Europe/Berlin"); default UTC.
    "dashboard_timezone": ("TWIN_TIMEZONE", None, str),
    # Token the dashboard asks for (?token=… once, then a cookie); required beyond loopback.
    "dashboard_token": ("TWIN_DASHBOARD_TOKEN", None, str),
    "api_cors_origins": ("TWIN_API_CORS_ORIGINS", None, str),
    # reads need this token (or [api] users) when set; required to bind beyond loopback
    "api_read_token": ("TWIN_API_READ_TOKEN", None, str),
    # the monitor's Prometheus port on 127.0.0.1 (None/0: off)
    "monitor_metrics_port": ("TWIN_MONITOR_METRICS_PORT", None, int),
    "log_format": ("TWIN_LOG_FORMAT", None, str),  # "text" (default) or "json"
    # where clients reach a service that listens inside a container whose port is published
    # elsewhere (compose sets it to the published address): the "beyond loopback needs a token"
    # rule applies to this address instead of the one the service binds
    "published_host": ("TWIN_PUBLISHED_HOST", None, str),
    # Who acknowledges / shelves when no one is logged in (CLI, dashboard); else [alarms] user.
    "alarm_user": ("TWIN_USER", None, str),
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build it with :func:`get_settings`."""

    db_path: Path  # or a StoreURL (PostgreSQL); see db_url
    data_dir: Path
    models_dir: Path
    reports_dir: Path
    settings_file: Path
    api_host: str
    api_port: int
    dashboard_port: int
    dashboard_max_kernels: int
    api_token: str | None
    dashboard_timezone: str       # IANA zone name ("UTC" unless set)
    dashboard_token: str | None
    api_cors_origins: str | list | None  # comma-separated text or a list; None = no CORS
    alarm_user: str | None = None  # TWIN_USER, else [alarms] user: who acks when no one logged in
    file: dict = field(default_factory=dict, compare=False)
    kinds: dict = field(default_factory=lambda: dict(BUILTIN_KINDS), compare=False)
    api_read_token: str | None = None
    monitor_metrics_port: int | None = None
    log_format: str = "text"
    published_host: str | None = None

    def exposed_host(self, bind_host: str) -> str:
        """The address whose reach decides whether a service needs a token: the published one
        when the service runs behind port publishing (``TWIN_PUBLISHED_HOST``), else its bind."""
        return self.published_host or bind_host

    @property
    def db_url(self) -> str | None:
        """The PostgreSQL URL when the database is one (``TWIN_DB=postgresql://…``), else None."""
        return str(self.db_path) if isinstance(self.db_path, StoreURL) else None

    def asset_section(self, asset_id: str) -> dict:
        """``[assets."<asset_id>"]`` of the settings file, ``{}`` when absent."""
        node = (self.file.get("assets", {}) or {}).get(asset_id, {})
        return node if isinstance(node, dict) else {}

    def kind(self, name: str) -> Kind:
        """The kind called ``name`` (built-in or from the settings file)."""
        try:
            return self.kinds[name]
        except KeyError:
            raise SettingsError(f"unknown kind {name!r}; known kinds: {', '.join(sorted(self.kinds))} "
                                f"(define it under [kinds.{name}] in the settings file)") from None

    def kind_for(self, asset_id: str | None, stored_kind: str | None = None) -> Kind:
        """An asset's kind: ``[assets."<id>"] kind`` in the settings file, else the kind the store
        recorded for it, else the pump."""
        name = (self.asset_section(asset_id).get("kind") if asset_id else None) or stored_kind \
            or DEFAULT_KIND
        return self.kind(str(name))

    def location_for(self, asset_id: str, stored_location: str | None = None) -> str | None:
        """An asset's location path (``plant-1/line-2``): the settings file's, else the store's."""
        loc = self.asset_section(asset_id).get("location")
        return str(loc) if loc else stored_location

    def thresholds(self, asset_id: str | None = None) -> dict[str, float]:
        """Alarm thresholds: defaults, then ``[thresholds]``, then the asset's own overrides."""
        out = dict(THRESHOLDS)
        out.update({k: float(v) for k, v in self.file.get("thresholds", {}).items() if k in SENSORS})
        if asset_id is not None:
            asset = self.file.get("assets", {}).get(asset_id, {})
            out.update({k: float(v) for k, v in asset.get("thresholds", {}).items() if k in SENSORS})
        return out

    def timestamp_window(self) -> tuple[str, float]:
        """(earliest timestamp, seconds ahead of now) a reading may carry: ``[ingest]``, else defaults."""
        sec = self.section("ingest")
        try:
            return str(sec.get("earliest", TS_EARLIEST)), float(sec.get("max_ahead_s", TS_MAX_AHEAD_S))
        except (TypeError, ValueError):
            raise SettingsError(f"[ingest] max_ahead_s must be a number of seconds, got "
                                f"{sec.get('max_ahead_s')!r}") from None

    def section(self, *path: str) -> dict:
        """A (possibly nested) section of the settings file, ``{}`` when absent."""
        node: Any = self.file
        for key in path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}


def load_settings_file(path: str | os.PathLike | None) -> dict:
    """Parse the TOML settings file; a missing file means "all defaults" and gives ``{}``."""
    if path is None:
        return {}
    p = Path(path)
    if not p.exists():
        return {}
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {p}: {exc}") from exc


def _coerce(name: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{name} must be an integer, got {value!r}") from None
    if kind is Path:
        return db_location(value) if name == "db_path" else Path(value)
    return str(value)


def check_timezone(name: str) -> str:
    """The IANA zone name if the machine knows it (``UTC``, ``Europe/Berlin``), else SettingsError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = str(name).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"unknown time zone {name!r} ([dashboard] timezone / TWIN_TIMEZONE): use "
                            "an IANA name such as 'UTC' or 'Europe/Berlin'") from None
    return name


def get_settings(env: dict | None = None, **overrides: Any) -> Settings:
    """Resolve every setting: keyword argument → environment variable → default.

    ``env`` replaces ``os.environ`` (tests). Overrides that are ``None`` count as not given, so
    CLI options can be passed straight through.
    """
    env = os.environ if env is None else env
    unknown = set(overrides) - set(_SPEC)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, (var, default, kind) in _SPEC.items():
        value = overrides.get(name)
        if value is None:
            value = env.get(var) or None
        if value is None:
            value = default
        values[name] = _coerce(name, value, kind)
    file = load_settings_file(values["settings_file"])
    if values["api_token"] is None:
        token = file.get("api", {}).get("token")
        values["api_token"] = str(token) if token else None
    if values["api_cors_origins"] is None:
        values["api_cors_origins"] = file.get("api", {}).get("cors_origins")
    if values["api_read_token"] is None:
        token = file.get("api", {}).get("read_token")
        values["api_read_token"] = str(token) if token else None
    if values["monitor_metrics_port"] is None:
        port = file.get("monitor", {}).get("metrics_port")
        values["monitor_metrics_port"] = _coerce("monitor_metrics_port", port, int) if port else None
    if values["log_format"] is None:
        values["log_format"] = str(file.get("logging", {}).get("format", "text"))
    if values["log_format"] not in ("text", "json"):
        raise SettingsError(f"log_format must be text or json, got {values['log_format']!r}")
    if values["alarm_user"] is None:
        user = file.get("alarms", {}).get("user") if isinstance(file.get("alarms"), dict) else None
        values["alarm_user"] = str(user).strip() if user and str(user).strip() else None
    if values["dashboard_max_kernels"] is None:
        values["dashboard_max_kernels"] = _coerce(
            "dashboard_max_kernels", file.get("dashboard", {}).get("max_kernels", 8), int)
    if values["dashboard_max_kernels"] < 0:
        raise SettingsError("dashboard_max_kernels must be 0 (no limit) or more, got "
                            f"{values['dashboard_max_kernels']}")
    dash = file.get("dashboard", {}) if isinstance(file.get("dashboard", {}), dict) else {}
    if values["dashboard_timezone"] is None:
        values["dashboard_timezone"] = str(dash.get("timezone") or "UTC")
    values["dashboard_timezone"] = check_timezone(values["dashboard_timezone"])
    if values["dashboard_token"] is None:
        token = dash.get("token")
        values["dashboard_token"] = str(token) if token else None
    for port in ("api_port", "dashboard_port", "monitor_metrics_port"):
        if values[port] is not None and not 0 <= values[port] <= 65535:
            raise SettingsError(f"{port} must be between 0 and 65535, got {values[port]}")
    try:
        kinds = load_kinds(file, source=str(values["settings_file"]))
    except KindError as exc:
        raise SettingsError(f"settings file {values['settings_file']}: {exc}") from exc
    return Settings(**values, file=file, kinds=kinds)


