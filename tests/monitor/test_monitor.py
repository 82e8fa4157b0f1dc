"""The monitor end to end: readings → store → alarms → notifications; restarts; signals."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinlib.detect import AlarmEngine
from twinlib.ingest import write_csv
from twinlib.ingest.sources import ReplaySource, SimSource
from twinlib.monitor import (
    HEARTBEAT_KEY,
    Monitor,
    MonitorBusyError,
    MonitorLock,
    build_engine,
    read_heartbeat,
)
from twinlib.notify import Notifier, WebhookChannel
from twinlib.store import open_store
from twinlib.timeutil import to_ms

from monitor_helpers import WebhookReceiver, wait_until

#: Rules pinned for these tests (the defaults may be tuned): raise after 3 readings over the
#: level, clear after 5 back under it.
RULES = {"rules": {"hold_readings": 3, "clear_readings": 5}}


def engine_for(store):
    return AlarmEngine(store, RULES)


def overheating_recording(path, *, hot_from=20, hot_to=40, n=60, asset="pump-07",
                          start="2026-02-10 00:00:00"):
    """A 1 Hz recording whose temperature goes over the critical level and comes back."""
    rng = np.random.default_rng(0)  # noise: a constant sensor would be a stuck sensor
    temp = 60.0 + rng.normal(0, 0.3, n)
    temp[hot_from:hot_to] += 41.0  # ~101 °C: over the critical level (95)
    df = pd.DataFrame({"timestamp": pd.date_range(start, periods=n, freq="1s"),
                       "asset_id": asset, "temperature": temp.round(2),
                       "vibration": (0.3 + rng.normal(0, 0.01, n)).round(4),
                       "pressure": (40.0 + rng.normal(0, 0.3, n)).round(2)})
    write_csv(df, path)
    return df


def test_alarm_raises_clears_and_reaches_the_webhook(tmp_path, webhook):
    overheating_recording(tmp_path / "rec.csv")
    store = open_store(tmp_path / "t.db", create=True)
    notifier = Notifier([WebhookChannel(webhook.url)], backoff_s=0.01)
    mon = Monitor(store, ReplaySource(tmp_path / "rec.csv", speed=float("inf")),
                  engine=engine_for(store), notifier=notifier, batch_rows=7)
    stats = mon.run(duration_s=30)
    assert stats.inserted == 60
    assert stats.events["raised"] == 1 and stats.events["cleared"] == 1
    got = webhook.payloads()
    assert [p["kind"] for p in got] == ["raised", "cleared"]
    raised = got[0]
    assert raised["asset_id"] == "pump-07" and raised["rule"] == "temperature_high"
    assert raised["severity"] == "critical" and raised["value"] > 95
    assert raised["ts"] == to_ms("2026-02-10 00:00:20")  # the alarm starts at the first breach
    alerts = store.list_alerts(asset="pump-07")
    assert len(alerts) == 1 and alerts[0]["state"] == "cleared"


def test_a_hanging_webhook_does_not_slow_ingestion(tmp_path):
    gate = threading.Event()
    slow = WebhookReceiver(gate=gate)      # answers nothing until the test is done
    try:
        overheating_recording(tmp_path / "rec.csv", n=3000, hot_from=100, hot_to=200)
        store = open_store(tmp_path / "t.db", create=True)
        notifier = Notifier([WebhookChannel(slow.url, timeout_s=10)], retries=0)
        mon = Monitor(store, ReplaySource(tmp_path / "rec.csv", speed=float("inf")),
                      engine=engine_for(store), notifier=notifier, batch_rows=100)
        thread = threading.Thread(target=mon.run, kwargs={"duration_s": 60})
        thread.start()
        # every reading is stored and checked while the endpoint has not answered once
        assert wait_until(lambda: store.count() == 3000 and mon.stats.events["cleared"] == 1, 60)
        assert slow.answered == 0
        assert mon.stats.notifications == 2
        gate.set()
        thread.join(60)
        assert not thread.is_alive()
    finally:
        gate.set()
        slow.close()


def test_bad_readings_are_reported_and_the_monitor_goes_on(tmp_path, caplog):
    path = tmp_path / "rec.csv"
    path.write_text("timestamp,asset_id,temperature,vibration,pressure\n"
                    "2026-02-10 00:00:00,pump-01,50,0.2,40\n"
                    "2026-02-10 00:00:01,pump-01,9999,0.2,40\n"     # outside physical limits
                    "2026-02-10 00:00:02,bad id!,50,0.2,40\n"       # invalid asset id
                    "2026-02-10 00:00:03,pump-01,50,0.2,40\n")
    store = open_store(tmp_path / "t.db", create=True)
    mon = Monitor(store, ReplaySource(path, speed=float("inf")), engine=engine_for(store))
    stats = mon.run(duration_s=30)
    assert stats.inserted == 2 and stats.rejected == 2 and stats.received == 4
    reasons = " | ".join(r["reason"] for r in mon.recent_rejects)
    assert "physically possible" in reasons and "invalid asset_id" in reasons
    assert read_heartbeat(store)["stats"]["rejected"] == 2


def test_heartbeat_tells_who_writes_and_what_it_did(tmp_db):
    store = open_store(tmp_db, create=True)
    mon = Monitor(store, SimSource(assets=2, rate=10.0), tick_s=0.1)
    mon.run(duration_s=0.6)
    beat = read_heartbeat(store)
    assert beat["pid"] == os.getpid() and beat["source"] == "sim"
    assert beat["stats"]["inserted"] == store.count() > 0
    assert json.loads(store.get_meta(HEARTBEAT_KEY))["assets"] == 2
    # a second run in the same process is told apart from the first by its run id
    again = Monitor(store, SimSource(assets=2, rate=10.0), tick_s=0.1)
    again.run(duration_s=0.3)
    second = read_heartbeat(store)
    assert second["run_id"] == again.run_id != beat["run_id"] == mon.run_id
    assert second["started_ms"] == again.stats.started_ms >= beat["started_ms"]


def test_no_stale_alarms_while_catching_up(tmp_path):
    clock = {"ms": to_ms("2026-02-10 00:00:00")}
    store = open_store(tmp_path / "t.db", create=True)
    src = SimSource(assets=2, seed=5, fault_rate=0.0, start_ms=clock["ms"],
                    clock=lambda: clock["ms"])
    mon = Monitor(store, src, engine=engine_for(store), batch_rows=500, tick_s=1e-6)
    mon.open()
    clock["ms"] += 2 * 3600 * 1000  # two hours behind: 14,402 readings to catch up
    while True:
        batch = mon.run_once()
        if batch is None or not batch.more:
            break
    assert store.count() == 2 * 7201
    assert mon.stats.events["raised"] == 0  # a healthy fleet, merely late, is not stale


def test_old_events_are_recorded_but_not_notified(tmp_path, webhook):
    overheating_recording(tmp_path / "rec.csv")
    store = open_store(tmp_path / "t.db", create=True)
    notifier = Notifier([WebhookChannel(webhook.url)])
    # replay clock at the end of the file; the alarm lies ~40 s before: older than 10 s
    mon = Monitor(store, ReplaySource(tmp_path / "rec.csv", speed=float("inf")),
                  engine=engine_for(store), notifier=notifier, batch_rows=100,
                  notify_max_age_s=10)
    stats = mon.run(duration_s=30)
    assert stats.events["raised"] == 1 and stats.events["cleared"] == 1
    assert stats.not_notified_old == 2
    # the clearing is recent, but a "cleared" for an alarm nobody was told of is noise too
    assert webhook.payloads() == [] and len(store.list_alerts()) == 1


def test_only_one_monitor_per_database(tmp_db):
    from twinlib.config import is_db_url
    if is_db_url(str(tmp_db)):  # PostgreSQL takes one monitor per gateway or site: no lock
        with MonitorLock(tmp_db), MonitorLock(tmp_db):
            return
    with MonitorLock(tmp_db):
        with pytest.raises(MonitorBusyError, match="already writing"):
            MonitorLock(tmp_db).acquire()
    MonitorLock(tmp_db).acquire().release()  # free again once released


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotted path"])
def test_the_lock_belongs_to_the_database_not_to_its_name(tmp_path, link):
    db = tmp_path / "twin.db"
    open_store(db, create=True).close()
    other = tmp_path / "other" / "alias.db"
    other.parent.mkdir()
    if link == "symlink":
        other.symlink_to(db)
    elif link == "hardlink":
        os.link(db, other)
    else:
        other = tmp_path / "other" / ".." / "twin.db"
    with MonitorLock(db):
        with pytest.raises(MonitorBusyError, match="already writing"):
            MonitorLock(other).acquire()
    with MonitorLock(other):  # and the other way round
        with pytest.raises(MonitorBusyError, match="already writing"):
            MonitorLock(db).acquire()
    MonitorLock(other).acquire().release()


def test_twin_run_refuses_a_second_monitor_through_a_hard_link(tmp_path):
    env = run_env(tmp_path)
    open_store(tmp_path / "twin.db", create=True).close()
    os.link(tmp_path / "twin.db", tmp_path / "alias.db")
    env["TWIN_DB"] = str(tmp_path / "alias.db")
    with MonitorLock(tmp_path / "twin.db"):
        proc = twin("run", "--source", "sim", "--duration", "5", env=env)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "already writing this database" in err


# -- the `twin run` process ------------------------------------------------------------------
TWIN = [sys.executable, "-c", "import sys; from twinlib.cli import main; sys.exit(main())"]


def twin(*args, env=None, **kw):
    return subprocess.Popen([*TWIN, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def beating(db, pid):
    """The monitor process `pid` has written its first heartbeat into this database.

    Not just any heartbeat: the previous run's stays in the store, and its process may be
    gone while the new one has not installed its signal handlers yet. A process writes its
    first heartbeat from inside `Monitor.run`, after `twin run` installed them.
    """
    try:
        store = open_store(db, readonly=True)
    except Exception:
        return False
    try:
        beat = read_heartbeat(store)
        return beat is not None and beat.get("pid") == pid
    except Exception:
        return False
    finally:
        store.close()


def run_env(tmp_path):
    env = dict(os.environ)
    env["TWIN_DB"] = str(tmp_path / "twin.db")
    env["TWIN_SETTINGS"] = str(tmp_path / "twin.toml")
    return env


@pytest.mark.slow
def test_twin_run_stops_cleanly_and_resumes_without_gaps(tmp_path, webhook, capsys,
                                                         monkeypatch):
    (tmp_path / "twin.toml").write_text(f'[notify.webhook]\nurl = "{webhook.url}"\n')
    env = run_env(tmp_path)
    for round_, sig in enumerate((signal.SIGTERM, signal.SIGINT)):  # a restart between the two
        log = tmp_path / f"run-{round_}.log"  # a file, not a pipe nobody drains while it runs
        with open(log, "w") as fh:
            proc = subprocess.Popen([*TWIN, "run", "--source", "sim", "--assets", "2", "--rate",
                                     "20", "--tick", "0.2"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=fh, text=True)
        try:
            # this process's own heartbeat: written once its signal handlers are installed
            # (generous limits: a loaded machine can take long to start a Python process)
            assert wait_until(lambda: beating(tmp_path / "twin.db", proc.pid), 120), \
                log.read_text()
            store = open_store(tmp_path / "twin.db")
            target = 60 * (round_ + 1)
            assert wait_until(lambda: store.count() >= target, 120), log.read_text()
            store.close()
            proc.send_signal(sig)
            proc.wait(60)
        finally:
            if proc.poll() is None:  # a failed round must not leave a monitor running
                proc.kill()
                proc.wait()
        err = log.read_text()
        assert proc.returncode == 0, err
        assert f"{sig.name} received, stopping" in err
        assert "twin run: stopped" in err and "notify: webhook" in err
        if round_ == 0:
            time.sleep(0.5)  # readings fall due while the monitor is down
    store = open_store(tmp_path / "twin.db")
    df = store.window()
    assert not df.duplicated(["asset_id", "ts"]).any()
    for _, one in df.groupby("asset_id"):
        # at 20 Hz a step is 50 ms: the restart filled the downtime, no reading is missing
        assert set(np.diff(one["ts"].to_numpy())) == {50}
    from twinlib.cli import main

    monkeypatch.setenv("TWIN_DB", env["TWIN_DB"])
    capsys.readouterr()
    assert main(["run", "--check"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "sim"
    assert main(["run", "--check", "--max-age", "0.001"]) == 1  # too old for a tight limit


def test_twin_run_refuses_a_second_monitor(tmp_path):
    env = run_env(tmp_path)
    with MonitorLock(tmp_path / "twin.db"):
        proc = twin("run", "--source", "sim", "--duration", "5", env=env)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "already writing this database" in err


def test_twin_run_option_errors_are_clear(tmp_path, capsys, monkeypatch):
    from twinlib.cli import main

    monkeypatch.setenv("TWIN_DB", str(tmp_path / "twin.db"))
    assert main(["run", "--source", "replay"]) == 2
    assert "needs a file" in capsys.readouterr().err
    assert main(["run", "--source", "replay", "--file", str(tmp_path / "none.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["run", "--source", "sim", "--speed", "max"]) == 2
    assert "for replays" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", "--source", "sim", "--speed", "-3"])
    assert exc.value.code == 2 and "speed must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "twin.db").exists()  # nothing was created by a refused start


def test_a_failed_store_write_is_retried_and_loses_nothing(tmp_path, monkeypatch):
    import sqlite3

    overheating_recording(tmp_path / "rec.csv", n=50)
    store = open_store(tmp_path / "t.db", create=True)
    real = store.load_readings
    calls = {"n": 0}

    def flaky(df, progress=False):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch meets a locked database
            raise sqlite3.OperationalError("database is locked")
        return real(df, progress=progress)
    monkeypatch.setattr(store, "load_readings", flaky)
    mon = Monitor(store, ReplaySource(tmp_path / "rec.csv", speed=float("inf")), batch_rows=10,
                  tick_s=0.01)
    stats = mon.run(duration_s=30)
    assert stats.store_errors == 1 and stats.inserted == 50 and store.count() == 50


def test_twin_run_replays_a_nab_recording_to_the_end(tmp_path):
    nab = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "nab" / \
        "machine_temperature_system_failure.csv"
    if not nab.exists():
        pytest.skip(f"dataset {nab} not present")
    env = run_env(tmp_path)
    proc = twin("run", "--source", "replay", "--file", str(nab), "--speed", "max", env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "source exhausted" in err and "22,683 stored" in err and "12 rejected" in err
    store = open_store(tmp_path / "twin.db")
    assert store.count(asset="nab-machine_temperature_system_failure") == 22683


def test_engine_takes_its_rules_from_the_settings_file(tmp_path):
    from twinlib.config import get_settings

    settings_file = tmp_path / "twin.toml"
    settings_file.write_text("[thresholds]\ntemperature = 70\ntemperature_critical = 120\n"
                             "[rules]\nhold_readings = 3\nclear_readings = 5\n")
    path = tmp_path / "rec.csv"
    df = overheating_recording(path)
    df.loc[20:39, "temperature"] -= 26.0  # ~75 °C: only over the level set in the file
    write_csv(df, path)
    store = open_store(tmp_path / "t.db", create=True)
    engine = build_engine(store, get_settings(settings_file=settings_file))
    stats = Monitor(store, ReplaySource(path, speed=float("inf")), engine=engine).run(
        duration_s=30)
    assert stats.events["raised"] == 1
    assert store.list_alerts()[0]["severity"] == "warning"


def test_broken_detection_does_not_stop_ingestion(tmp_path, caplog):
    class BrokenEngine:
        def process_new(self):
            raise RuntimeError("rule bug")

        def check_stale(self, now_ms):
            return []

    overheating_recording(tmp_path / "rec.csv", n=30)
    store = open_store(tmp_path / "t.db", create=True)
    mon = Monitor(store, ReplaySource(tmp_path / "rec.csv", speed=float("inf")),
                  engine=BrokenEngine(), batch_rows=10)
    stats = mon.run(duration_s=30)
    assert stats.inserted == 30 and stats.detect_errors >= 3
    assert sum("detection failed" in r.message for r in caplog.records) == 1  # not a flood


# -- notifications survive a crash (the outbox) ----------------------------------------------
CRASHER = Path(__file__).with_name("crashing_monitor.py")


def four_alarms_recording(path):
    """400 one-second readings with four overheating episodes: 4 raised + 4 cleared."""
    df = overheating_recording(path, n=400, hot_from=20, hot_to=30)
    for start in (60, 100, 140):
        df.loc[start:start + 9, "temperature"] += 41.0
    write_csv(df, path)


def restart_and_deliver(db, rec, url):
    store = open_store(db)
    notifier = Notifier([WebhookChannel(url)], backoff_s=0.05)
    mon = Monitor(store, ReplaySource(rec, speed=float("inf")), engine=engine_for(store),
                  notifier=notifier, batch_rows=50)
    mon.run(duration_s=60)   # to the end of the file; close() delivers what is pending
    return store


def assert_all_eight_delivered(store, webhook):
    got = webhook.payloads()
    assert [p["kind"] for p in got] == ["raised", "cleared"] * 4
    assert len({p["event_id"] for p in got}) == 8
    assert len(store.list_alerts(limit=None)) == 4
    assert [r["state"] for r in store.outbox_list()] == ["sent"] * 8


def test_kill_9_right_after_the_alarm_commit_loses_no_notification(tmp_path, webhook):
    """The crash point: alarm + outbox rows committed, the notifier not yet woken."""
    four_alarms_recording(tmp_path / "rec.csv")
    db = tmp_path / "t.db"
    proc = subprocess.run([sys.executable, str(CRASHER), str(db), str(tmp_path / "rec.csv"),
                           webhook.url, "kill-after-commit"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with open_store(db) as store:
        staged = store.outbox_list()
        assert [r["kind"] for r in staged] == ["raised"]  # committed with the first alarm
        assert staged[0]["state"] == "pending"
    assert webhook.requests == []                         # and never sent
    store = restart_and_deliver(db, tmp_path / "rec.csv", webhook.url)
    assert_all_eight_delivered(store, webhook)


def test_webhook_down_alarms_raised_kill_9_restart_delivers_all(tmp_path, webhook):
    four_alarms_recording(tmp_path / "rec.csv")
    db = tmp_path / "t.db"
    down = WebhookReceiver(statuses=[503] * 1000)
    try:
        proc = subprocess.Popen([sys.executable, str(CRASHER), str(db),
                                 str(tmp_path / "rec.csv"), down.url, "run"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def staged():
            try:
                with open_store(db, readonly=True) as store:
                    return len(store.outbox_list()) == 8
            except Exception:
                return False
        assert wait_until(staged, 60)
        assert wait_until(lambda: len(down.requests) >= 2, 30)  # being retried…
        proc.kill()                                               # …kill -9
        proc.wait(10)
    finally:
        down.close()
    assert down.payloads() == []
    store = restart_and_deliver(db, tmp_path / "rec.csv", webhook.url)
    assert_all_eight_delivered(store, webhook)


def test_sigterm_leaves_undelivered_notifications_in_the_outbox(tmp_path, webhook):
    """A clean stop with the webhook down loses nothing either (it used to drop the queue)."""
    four_alarms_recording(tmp_path / "rec.csv")
    down = WebhookReceiver(statuses=[503] * 1000)
    try:
        store = open_store(tmp_path / "t.db", create=True)
        notifier = Notifier([WebhookChannel(down.url)], backoff_s=0.05, retries=50)
        mon = Monitor(store, ReplaySource(tmp_path / "rec.csv", speed=float("inf")),
                      engine=engine_for(store), notifier=notifier, batch_rows=50)
        mon.run(duration_s=60)
        store.close()
    finally:
        down.close()
    with open_store(tmp_path / "t.db") as store:
        assert [r["state"] for r in store.outbox_list()] == ["pending"] * 8
    store = restart_and_deliver(tmp_path / "t.db", tmp_path / "rec.csv", webhook.url)
    assert_all_eight_delivered(store, webhook)


# -- detection catch-up is bounded per pass and stoppable ------------------------------------
class Idle:
    """A source with nothing to say (the readings came from an import, not from it)."""

    name, required, exhausted = "idle", ("temperature",), False

    def open(self, store):
        pass

    def read(self, max_rows):
        return None

    def commit(self, store):
        pass

    def wait(self, timeout, stop):
        stop.wait(timeout)

    def now_ms(self):
        return to_ms("2026-02-10 00:00:00")

    def describe(self):
        return {"source": self.name}

    def close(self):
        pass


def imported(tmp_path, name, n=30_000):
    """A store holding an import of `n` readings the engine has not checked yet."""
    store = open_store(tmp_path / name, create=True)
    overheating_recording(tmp_path / f"{name}.csv", n=n, hot_from=n // 2, hot_to=n // 2 + 40)
    store.load_readings(pd.read_csv(tmp_path / f"{name}.csv", parse_dates=["timestamp"]))
    return store


def test_detection_catch_up_is_bounded_per_pass_and_heartbeats_go_on(tmp_path):
    store = imported(tmp_path, "live.db")
    engine = AlarmEngine(store, RULES, chunk=1000)
    mon = Monitor(store, Idle(), engine=engine, detect_rows=4000, tick_s=1e-6,
                  detect_pause_s=0.0, detect_budget_s=None)
    mon.run_once()
    assert engine.cursor == 4000 and mon.detect_behind   # one bounded pass, not 30,000
    assert read_heartbeat(store)["run_id"] == mon.run_id  # and the heartbeat is written
    passes = 1
    while mon.detect_behind:
        mon.run_once()
        passes += 1
    assert passes == 8 and engine.cursor == store.max_id() == 30_000
    batch = imported(tmp_path, "batch.db")
    AlarmEngine(batch, RULES).process_new()
    cols = ["asset_id", "rule", "severity", "state", "started_at", "ended_at", "peak_value"]
    assert [{k: a[k] for k in cols} for a in store.list_alerts(limit=None)] == \
        [{k: a[k] for k in cols} for a in batch.list_alerts(limit=None)]


def test_a_stop_during_catch_up_ends_the_pass_and_the_rest_waits_in_the_store(tmp_path):
    store = imported(tmp_path, "t.db")
    engine = AlarmEngine(store, RULES, chunk=1000)
    mon = Monitor(store, Idle(), engine=engine, detect_rows=1_000_000, tick_s=1e-6,
                  detect_budget_s=None)
    mon.open()
    calls = {"n": 0}
    real = engine.store.after

    def after_then_stop(*args, **kw):  # the stop arrives while the first chunk is checked
        calls["n"] += 1
        mon.stop()
        return real(*args, **kw)
    engine.store.after = after_then_stop
    mon.run_once()
    mon.close()   # the final pass is bounded by the stop too
    engine.store.after = real
    assert int(store.get_meta("detect.cursor")) == 2000 and calls["n"] == 2
    again = AlarmEngine(store, RULES)          # a restart goes on from the stored cursor
    again.process_new()
    assert again.cursor == 30_000
