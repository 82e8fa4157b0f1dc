"""PostgreSQL for the tests: one throw-away schema per test in the server named by
``TWIN_TEST_PG_URL`` (default: the local server's socket). Without a reachable server the tests
that need one skip and say why (and fail under ``TWIN_STRICT_SKIPS=1``, as in CI)."""
from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest

#: Read at import: the autouse fixture of tests/conftest.py clears TWIN_* while tests run.
PG_URL = os.environ.get("TWIN_TEST_PG_URL") or "postgresql:///postgres?host=/var/run/postgresql"
_state: dict = {}


def pg_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (None when they can); checked once."""
    if "why" not in _state:
        try:
            import psycopg
            with psycopg.connect(PG_URL, connect_timeout=3) as c:
                c.execute("SELECT 1")
            _state["why"] = None
        except Exception as exc:  # no driver, no server, no role…
            _state["why"] = (f"no PostgreSQL server reachable at {PG_URL} ({str(exc).strip()[:120]}); "
                             "start one and set TWIN_TEST_PG_URL")
    return _state["why"]


def require_pg() -> None:
    why = pg_unavailable()
    if why:
        pytest.skip(why)


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-c search_path={schema}')}"


class PgSchema:
    """A fresh schema; ``url`` opens stores confined to it."""

    def __init__(self):
        import psycopg
        self.name = "i13_" + uuid.uuid4().hex[:12]
        self.url = with_search_path(PG_URL, self.name)
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {self.name}")

    def drop(self) -> None:
        import psycopg
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


@pytest.fixture
def pg_url():
    """The URL of an empty PostgreSQL schema (skips without a server)."""
    require_pg()
    schema = PgSchema()
    yield schema.url
    schema.drop()


def tail_ids(store, page: int = 500) -> list[int]:
    """Every reading id a reader following the live cursor sees, paging ``page`` at a time."""
    out, cur = [], 0
    while True:
        got = store.after(cur, limit=page)
        if not got:
            return out
        out += [r.id for r in got]
        cur = got[-1].id
