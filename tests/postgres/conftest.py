"""PostgreSQL-only tests (skip with a reason without a server; fail under TWIN_STRICT_SKIPS=1)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from pg_support import pg_url  # noqa: E402,F401 (fixture)
