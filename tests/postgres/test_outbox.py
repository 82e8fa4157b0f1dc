"""The notification outbox on PostgreSQL: the same semantics as SQLite's (twinlib.store._outbox)."""
from __future__ import annotations

import json

import pytest

from twinlib.store import open_store


def _row(event_id: str, channel: str = "log", at: int = 1_000) -> dict:
    return {"channel": channel, "event_id": event_id, "kind": "raised",
            "payload": json.dumps({"event_id": event_id}), "next_at": at, "created_at": at}


def test_outbox_rows_commit_with_the_callers_transaction_once_per_event_and_channel(pg_url):
    with open_store(pg_url, create=True) as st:
        assert st.has_outbox()
        with pytest.raises(RuntimeError):
            with st.transaction():
                assert st.outbox_add([_row("1:raised")]) == 1
                raise RuntimeError("the alarm transition fails")
        assert st.outbox_pending() == 0  # rolled back with the transaction
        with st.transaction():
            assert st.outbox_add([_row("1:raised"), _row("1:raised", "hook")]) == 2
        assert st.outbox_add([_row("1:raised")]) == 0  # the same event again: kept once
        with st.transaction():
            assert st.outbox_add([_row("2:raised")]) == 1
        first = st.outbox_next("log")
        assert first["event_id"] == "1:raised" and first["state"] == "pending"
        st.outbox_sent(first["id"], 2_000)
        second = st.outbox_next("log")
        assert second["event_id"] == "2:raised"
        st.outbox_retry(second["id"], 1, 5_000, "timeout")
        st.outbox_failed(second["id"], 2, "gave up")
        assert st.outbox_next("log") is None
        summary = st.outbox_summary()
        assert summary["log"]["sent"] == 1 and summary["log"]["failed"] == 1
        assert summary["log"]["last_error"] == "gave up"
        assert summary["hook"]["pending"] == 1
        assert st.outbox_requeue(9_000, channel="log") == 1
        again = st.outbox_next("log")
        assert again["id"] == second["id"] and again["attempts"] == 0 and again["next_at"] == 9_000
        assert st.outbox_prune(3_000) == 1  # the sent row; pending ones stay
        assert [r["event_id"] for r in st.outbox_list()] == ["1:raised", "2:raised"]
    with open_store(pg_url, create=True) as st:  # init_schema again keeps the rows
        assert st.outbox_pending() == 2
