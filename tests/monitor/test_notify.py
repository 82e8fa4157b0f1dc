"""Notifications: webhook JSON, SMTP e-mail, retries with back-off, never blocking the caller."""
import dataclasses
import hashlib
import hmac
import json

import numpy as np
import pytest

from twinlib.notify import EmailChannel, Notifier, WebhookChannel, event_payload, notifier_from_settings

from monitor_helpers import WebhookReceiver, free_port, wait_until


@dataclasses.dataclass
class Event:
    """Shaped like twinlib.detect.AlarmEvent (the fields notifications read)."""

    kind: str
    alert_id: int
    asset_id: str
    rule: str
    sensor: str
    severity: str
    value: float
    ts: int
    message: str


def make_event(kind="raised", value=91.5, alert_id=7):
    return Event(kind, alert_id, "pump-01", "temperature_high", "temperature", "critical",
                 np.float64(value), 1_770_000_000_250, f"pump-01 temperature {value} > 85")


def test_payload_is_plain_json_with_readable_time():
    payload = event_payload(make_event())
    text = json.dumps(payload)  # numpy values must have become plain numbers
    assert json.loads(text)["value"] == 91.5
    assert payload["kind"] == payload["event"] == "raised"
    assert payload["asset_id"] == "pump-01" and payload["alert_id"] == 7
    assert payload["time"] == "2026-02-02 02:40:00.250"


def test_webhook_posts_each_event_as_json(webhook):
    notifier = Notifier([WebhookChannel(webhook.url, headers={"X-Test": "1"})], backoff_s=0.01)
    assert notifier.submit([make_event("raised"), make_event("cleared")]) == 2
    assert notifier.flush(5)
    notifier.close()
    got = webhook.payloads()
    assert [p["kind"] for p in got] == ["raised", "cleared"]  # in order
    assert got[0]["rule"] == "temperature_high" and got[0]["severity"] == "critical"
    req = webhook.requests[0]
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["X-Test"] == "1"
    assert notifier.stats()["webhook"]["sent"] == 2


def test_webhook_signature_lets_the_receiver_check_the_sender(webhook):
    notifier = Notifier([WebhookChannel(webhook.url, secret="s3cret")])
    notifier.submit([make_event()])
    assert notifier.flush(5)
    notifier.close()
    req = webhook.requests[0]
    expected = hmac.new(b"s3cret", req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Twin-Signature"] == f"sha256={expected}"


def test_webhook_retries_with_growing_backoff_then_delivers():
    receiver = WebhookReceiver(statuses=[500, 503])
    try:
        notifier = Notifier([WebhookChannel(receiver.url)], retries=3, backoff_s=0.2)
        notifier.submit([make_event()])
        assert notifier.flush(10)
        notifier.close()
        times = [r["at"] for r in receiver.requests]
        assert [r["status"] for r in receiver.requests] == [500, 503, 200]
        gaps = np.diff(times)
        assert gaps[0] >= 0.18 and gaps[1] >= 0.38  # 0.2 s, then doubled to 0.4 s
        stats = notifier.stats()["webhook"]
        assert stats["sent"] == 1 and stats["retried"] == 2 and stats["failed"] == 0
        assert receiver.payloads()[0]["kind"] == "raised"
    finally:
        receiver.close()


def test_webhook_gives_up_after_retries_and_says_so(caplog):
    receiver = WebhookReceiver(statuses=[500] * 10)
    try:
        notifier = Notifier([WebhookChannel(receiver.url)], retries=2, backoff_s=0.01)
        notifier.submit([make_event()])
        assert notifier.flush(10)
        notifier.close()
        assert len(receiver.requests) == 3
        stats = notifier.stats()["webhook"]
        assert stats["failed"] == 1 and stats["sent"] == 0
        assert "HTTP 500" in stats["last_error"]
        assert any("giving up" in r.message for r in caplog.records)
    finally:
        receiver.close()


def test_submit_does_not_wait_for_a_hanging_endpoint():
    receiver = WebhookReceiver(delay_s=3.0)
    try:
        notifier = Notifier([WebhookChannel(receiver.url, timeout_s=5.0)], retries=0)
        for i in range(50):
            notifier.submit([make_event(alert_id=i)])
        # all 50 queued while the endpoint has not answered even the first one
        assert receiver.answered == 0
        assert notifier.stats()["webhook"]["queued"] == 50
        notifier.close(timeout=0.2)
        # no database behind this notifier: what is left is reported, not silent
        assert notifier.stats()["webhook"]["abandoned"] >= 48
    finally:
        receiver.close()


def test_unreachable_webhook_is_reported_not_raised():
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    notifier = Notifier([WebhookChannel(url, timeout_s=1.0)], retries=1, backoff_s=0.01)
    notifier.submit([make_event()])
    assert notifier.flush(10)
    notifier.close()
    stats = notifier.stats()["webhook"]
    assert stats["failed"] == 1 and "unreachable" in stats["last_error"]


def test_nothing_is_dropped_however_many_wait():
    receiver = WebhookReceiver(delay_s=0.02)
    try:
        notifier = Notifier([WebhookChannel(receiver.url)], retries=0, queue_size=3)
        notifier.submit([make_event(alert_id=i) for i in range(10)])
        assert notifier.flush(20)
        notifier.close()
        assert [p["alert_id"] for p in receiver.payloads()] == list(range(10))  # in order
        assert notifier.stats()["webhook"]["dropped"] == 0
    finally:
        receiver.close()


def test_one_notification_per_event_and_channel_with_an_event_id(webhook):
    notifier = Notifier([WebhookChannel(webhook.url)])
    notifier.submit([make_event()])
    notifier.submit([make_event()])  # the same event again (e.g. a chunk redone)
    assert notifier.flush(5)
    notifier.close()
    assert len(webhook.requests) == 1
    assert webhook.payloads()[0]["event_id"] == "7:raised"
    assert webhook.requests[0]["headers"]["X-Twin-Event-Id"] == "7:raised"


# -- the outbox in the database: nothing waits only in memory ---------------------------------
def outbox_db(path):
    from twinlib.store import open_store

    open_store(path, create=True).close()
    return path


def test_undelivered_notifications_wait_in_the_outbox_for_the_next_start(tmp_path, caplog):
    from twinlib.store import open_store

    db = outbox_db(tmp_path / "t.db")
    down = WebhookReceiver(statuses=[503] * 100)
    try:
        first = Notifier([WebhookChannel(down.url)], db_path=db, retries=20, backoff_s=0.05)
        first.submit([make_event("raised", alert_id=i) for i in range(3)])
        assert wait_until(lambda: len(down.requests) >= 2, 30)  # it keeps trying…
        first.close(timeout=0.5)                                   # …then the process stops
    finally:
        down.close()
    assert any("sent at the next start" in r.message for r in caplog.records)
    with open_store(db) as store:
        rows = store.outbox_list()
        assert [r["state"] for r in rows] == ["pending"] * 3
        assert rows[0]["attempts"] >= 2 and "HTTP 503" in rows[0]["last_error"]
    up = WebhookReceiver()
    try:
        second = Notifier([WebhookChannel(up.url)], db_path=db, backoff_s=0.05).start()
        assert second.flush(20)
        second.close()
        assert [p["alert_id"] for p in up.payloads()] == [0, 1, 2]
    finally:
        up.close()
    with open_store(db) as store:
        assert [r["state"] for r in store.outbox_list()] == ["sent"] * 3


def test_a_given_up_notification_is_listed_and_can_be_sent_again(tmp_path, capsys,
                                                                 monkeypatch):
    from twinlib.cli import main

    db = outbox_db(tmp_path / "t.db")
    receiver = WebhookReceiver(statuses=[500, 500])
    try:
        notifier = Notifier([WebhookChannel(receiver.url)], db_path=db, retries=1,
                            backoff_s=0.01)
        notifier.submit([make_event()])
        assert notifier.flush(10)
        monkeypatch.setenv("TWIN_DB", str(db))
        assert main(["notify", "status", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["channels"]["webhook"]["failed"] == 1
        assert status["failed"][0]["event_id"] == "7:raised"
        assert "HTTP 500" in status["failed"][0]["last_error"]
        assert main(["notify", "retry"]) == 0
        assert "1 failed notification(s) queued again" in capsys.readouterr().out
        notifier.wake()
        assert wait_until(lambda: len(receiver.payloads()) == 1, 30)
        notifier.close()
        assert main(["notify", "status"]) == 0
        text = capsys.readouterr().out
        assert "webhook" in text and "0 pending" in text and "0 failed" in text
    finally:
        receiver.close()


def test_email_reaches_the_smtp_server(smtp_sink):
    channel = EmailChannel("127.0.0.1", ["ops@example.org", "oncall@example.org"],
                           port=smtp_sink.port, sender="twin@example.org")
    notifier = Notifier([channel], backoff_s=0.01)
    notifier.submit([make_event("escalated")])
    assert notifier.flush(10)
    notifier.close()
    assert wait_until(lambda: len(smtp_sink.messages) == 1, 30)
    env = smtp_sink.messages[0]
    assert env.mail_from == "twin@example.org"
    assert sorted(env.rcpt_tos) == ["oncall@example.org", "ops@example.org"]
    text = env.content.decode()
    assert "Subject: [twinlib] ESCALATED critical pump-01: temperature_high" in text
    assert "pump-01 temperature 91.5 > 85" in text


def test_email_to_a_dead_server_fails_after_retries():
    channel = EmailChannel("127.0.0.1", "ops@example.org", port=free_port(), timeout_s=1.0)
    notifier = Notifier([channel], retries=1, backoff_s=0.01)
    notifier.submit([make_event()])
    assert notifier.flush(10)
    notifier.close()
    stats = notifier.stats()["email"]
    assert stats["failed"] == 1 and stats["retried"] == 1


def test_channels_only_send_the_event_kinds_they_want(webhook):
    notifier = Notifier([WebhookChannel(webhook.url, events=["raised"])])
    notifier.submit([make_event("raised"), make_event("cleared"), make_event("escalated")])
    assert notifier.flush(5)
    notifier.close()
    assert [p["kind"] for p in webhook.payloads()] == ["raised"]


def test_settings_file_configures_both_channels(webhook, smtp_sink):
    file = {"notify": {"retries": 1, "backoff_s": 0.01,
                       "webhook": {"url": webhook.url, "timeout_s": 2},
                       "email": {"host": "127.0.0.1", "port": smtp_sink.port,
                                 "from": "twin@example.org", "to": "ops@example.org"}}}
    notifier = notifier_from_settings(file)
    assert [c.name for c in notifier.channels] == ["webhook", "email"]
    notifier.submit([make_event()])
    assert notifier.flush(10)
    notifier.close()
    assert len(webhook.payloads()) == 1
    assert wait_until(lambda: len(smtp_sink.messages) == 1, 30)


def test_no_notify_section_means_no_channels():
    notifier = notifier_from_settings({})
    assert notifier.channels == [] and notifier.submit([make_event()]) == 0
    notifier.close()


@pytest.mark.parametrize("file, words", [
    ({"notify": {"webhook": {"url": "ftp://x"}}}, "http"),
    ({"notify": {"webhook": {}}}, "needs url"),
    ({"notify": {"webhook": {"url": "http://x", "urll": 1}}}, "unknown keys"),
    ({"notify": {"email": {"host": "h"}}}, "needs host and to"),
    ({"notify": {"email": {"host": "h", "to": "not-an-address"}}}, "recipient"),
    ({"notify": {"webhook": {"url": "http://x", "events": ["exploded"]}}}, "unknown event"),
])
def test_settings_mistakes_are_named_at_startup(file, words):
    with pytest.raises(ValueError, match=words):
        notifier_from_settings(file)


def test_disabled_channel_is_ignored():
    notifier = notifier_from_settings({"notify": {"webhook": {"url": "http://x",
                                                              "enabled": False}}})
    assert notifier.channels == []
    notifier.close()


# -- the retry policy is tenacity's; the outbox keeps its waits across restarts -------------
@pytest.mark.parametrize("retries,backoff_s,max_backoff_s", [
    (5, 1.0, 60.0), (3, 0.2, 0.5), (0, 1.0, 60.0), (10, 0.0, 60.0), (60, 2.0, 3600.0)])
def test_retry_policy_is_backoff_doubling_to_the_cap_then_giving_up(retries, backoff_s,
                                                                    max_backoff_s):
    from twinlib.notify.dispatch import next_delay, retry_policy

    policy = retry_policy(retries, backoff_s, max_backoff_s)
    delays = [next_delay(policy, n) for n in range(1, retries + 3)]
    # after the n-th failed attempt: backoff_s * 2**(n-1), capped; none after the last retry
    expected = [min(backoff_s * 2 ** (n - 1), max_backoff_s) for n in range(1, retries + 1)]
    assert delays[:retries] == pytest.approx(expected)
    assert delays[retries:] == [None, None]


def _row_after_failures(db, receiver, attempts_before, retries, backoff_s, max_backoff_s):
    """Stage one notification whose earlier run failed ``attempts_before`` times, start a
    notifier on a failing webhook and return (row after one more failure, ms bounds of it)."""
    from twinlib.store import open_store
    from twinlib.timeutil import now_ms

    notifier = Notifier([WebhookChannel(receiver.url)], db_path=db, retries=retries,
                        backoff_s=backoff_s, max_backoff_s=max_backoff_s)
    with open_store(db) as store, store.transaction():
        notifier.stage(store, [make_event()])
    if attempts_before:
        with open_store(db) as store:
            row = store.outbox_list()[0]
            with store.transaction():
                store.outbox_retry(row["id"], attempts_before, now_ms(), "HTTP 503 earlier")
    before = now_ms()
    notifier.start()
    try:
        def failed_once_more():
            with open_store(db) as store:
                rows = store.outbox_list()
            return rows and rows[0]["attempts"] == attempts_before + 1 and rows
        assert wait_until(failed_once_more, 10)
        after = now_ms()
        return failed_once_more()[0], before, after
    finally:
        notifier.close(timeout=2)


def test_the_back_off_reached_is_written_to_the_outbox_row(tmp_path):
    db = outbox_db(tmp_path / "t.db")
    receiver = WebhookReceiver(statuses=[503] * 10)
    try:
        row, before, after = _row_after_failures(db, receiver, 0, retries=5, backoff_s=30.0,
                                                 max_backoff_s=60.0)
    finally:
        receiver.close()
    assert row["state"] == "pending" and "HTTP 503" in row["last_error"]
    assert before + 30_000 <= row["next_at"] <= after + 30_000   # first retry: backoff_s


def test_a_restart_goes_on_with_the_attempts_the_row_had_reached(tmp_path):
    db = outbox_db(tmp_path / "t.db")
    receiver = WebhookReceiver(statuses=[503] * 10)
    try:
        # 2 failures before the restart, a 3rd now: the next wait is 10 s * 2**2, capped at 25 s
        row, before, after = _row_after_failures(db, receiver, 2, retries=5, backoff_s=10.0,
                                                 max_backoff_s=25.0)
    finally:
        receiver.close()
    assert len(receiver.requests) == 1 and row["attempts"] == 3
    assert before + 25_000 <= row["next_at"] <= after + 25_000


def test_a_restart_past_the_retry_budget_gives_up_after_one_more_attempt(tmp_path):
    from twinlib.store import open_store

    db = outbox_db(tmp_path / "t.db")
    receiver = WebhookReceiver(statuses=[503] * 10)
    try:
        notifier = Notifier([WebhookChannel(receiver.url)], db_path=db, retries=2,
                            backoff_s=0.01)
        with open_store(db) as store, store.transaction():
            notifier.stage(store, [make_event()])
        with open_store(db) as store:
            with store.transaction():
                store.outbox_retry(store.outbox_list()[0]["id"], 2, 0, "HTTP 503 earlier")
        notifier.start()
        assert notifier.flush(10)
        notifier.close()
    finally:
        receiver.close()
    with open_store(db) as store:
        row = store.outbox_list()[0]
    assert len(receiver.requests) == 1
    assert row["state"] == "failed" and row["attempts"] == 3
