"""Shared fixtures: a temporary database path, a small seeded fleet, and a store holding it."""
from __future__ import annotations

import os

import pytest

from twinlib.simulate import simulate_fleet
from twinlib.store import open_store

FLEET_START = "2026-02-10 00:00:00"
#: Read once at start-up: tests clear TWIN_* variables while they run.
STRICT_SKIPS = os.environ.get("TWIN_STRICT_SKIPS") == "1"
#: ``TWIN_TEST_STORE=postgresql`` puts the shared ``store`` fixture in PostgreSQL (a schema per
#: test on TWIN_TEST_PG_URL): `make test-postgres` runs the store, API, monitor and alarm tests so.
STORE_BACKEND = os.environ.get("TWIN_TEST_STORE", "sqlite")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """No test reads the developer's own TWIN_* settings or twin.toml."""
    for var in [v for v in os.environ if v.startswith("TWIN_")]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TWIN_SETTINGS", str(tmp_path / "no-settings.toml"))


@pytest.fixture
def tmp_db(tmp_path):
    """Location of a database that does not exist yet: a file path (or, under
    ``TWIN_TEST_STORE=postgresql``, the URL of an empty PostgreSQL schema)."""
    if STORE_BACKEND != "postgresql":
        yield tmp_path / "twin.db"
        return
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "store"))
    from twinlib.config import db_location

    from pg_support import PgSchema, require_pg
    require_pg()
    schema = PgSchema()
    yield db_location(schema.url)
    schema.drop()


@pytest.fixture(scope="session")
def fleet():
    """Three pumps, 3 hours at 1 s, seed 7, with one scripted bearing wear and one leak."""
    return simulate_fleet(
        assets=3, hours=3.0, freq_s=1.0, seed=7, start=FLEET_START, fault_rate=0.0,
        faults=[
            {"asset_id": "pump-01", "kind": "bearing_wear", "onset": "2026-02-10 01:00:00",
             "duration_s": 7200},
            {"asset_id": "pump-02", "kind": "leak", "onset": "2026-02-10 01:30:00",
             "duration_s": 3600},
        ])


@pytest.fixture
def store(tmp_db, fleet):
    """A fresh store loaded with ``fleet`` (readings, assets, fault events), at ``tmp_db``."""
    s = open_store(tmp_db, create=True)
    s.load_readings(fleet.readings)
    s.upsert_assets(fleet.assets)
    s.load_fault_events(fleet.events)
    yield s
    s.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With TWIN_STRICT_SKIPS=1 (set by .ci/run) a skipped test fails: CI must run everything."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and STRICT_SKIPS and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped under TWIN_STRICT_SKIPS=1 (CI must run every test): {rep.longrepr}"
