"""The store contract runs against both backends: ``db`` is a fresh database location (a SQLite
path or a PostgreSQL URL) and ``store`` the seeded fleet in it."""
from __future__ import annotations

import pytest

from twinlib.store import open_store

from pg_support import PgSchema, pg_url, require_pg  # noqa: F401 (fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


@pytest.fixture
def db(backend, tmp_path):
    """A location where no database exists yet, for each backend."""
    if backend == "sqlite":
        yield tmp_path / "twin.db"
        return
    require_pg()
    schema = PgSchema()
    yield schema.url
    schema.drop()


@pytest.fixture
def tmp_db(db):
    return db


@pytest.fixture
def store(db, fleet):
    s = open_store(db, create=True)
    s.load_readings(fleet.readings)
    s.upsert_assets(fleet.assets)
    s.load_fault_events(fleet.events)
    yield s
    s.close()
