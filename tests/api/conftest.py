"""Fixtures for the API tests: an app on a temporary store, its test client, and the token."""
from __future__ import annotations

import pytest

from twinlib.api import create_app
from twinlib.config import get_settings

TOKEN = "test-token-123"


@pytest.fixture
def make_app(tmp_path):
    """Build an app on any database path (settings isolated from the environment)."""

    def make(db_path, **config):
        settings = get_settings(db_path=db_path, settings_file=tmp_path / "none.toml")
        return create_app(settings, test_config=config or None)

    return make


@pytest.fixture
def app(store, make_app):
    """The API on the shared seeded fleet store, with a write token configured."""
    return make_app(store.path, API_TOKEN=TOKEN)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    """Headers carrying the configured bearer token."""
    return {"Authorization": f"Bearer {TOKEN}"}
