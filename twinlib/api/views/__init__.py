"""The API's blueprints, one per concern; :data:`BLUEPRINTS` is what the factory registers."""
from .alarms import bp as alarms_bp
from .assets import bp as assets_bp
from .data import bp as data_bp
from .export import bp as export_bp
from .health import bp as health_bp
from .ingest import bp as ingest_bp
from .metrics import bp as metrics_bp
from .spec import bp as spec_bp

__all__ = ["BLUEPRINTS"]

BLUEPRINTS = (data_bp, assets_bp, alarms_bp, health_bp, ingest_bp, export_bp, spec_bp, metrics_bp)
