"""A monitor process for the crash tests (run as a script, not collected by pytest).

    python crashing_monitor.py DB RECORDING WEBHOOK_URL MODE

MODE ``kill-after-commit``: the process kills itself (SIGKILL) at the first moment the alarm
engine's transaction — alarm rows and their outbox rows — has committed, before any delivery
is attempted (the monitor's wake-up call to the notifier). MODE ``run``: an ordinary monitor
with a webhook that does not answer; the test kills it.
"""
import os
import signal
import sys

from twinlib.detect import AlarmEngine
from twinlib.ingest.sources import ReplaySource
from twinlib.monitor import Monitor
from twinlib.notify import Notifier, WebhookChannel
from twinlib.store import open_store

RULES = {"rules": {"hold_readings": 3, "clear_readings": 5}}


def main(db, recording, url, mode):
    store = open_store(db, create=True)
    # workers act only when woken (no polling), so nothing is sent behind the test's back
    notifier = Notifier([WebhookChannel(url, timeout_s=2.0)], retries=50, backoff_s=0.05,
                        max_backoff_s=0.2, poll_s=3600.0)
    if mode == "kill-after-commit":
        def crash(self):
            os.kill(os.getpid(), signal.SIGKILL)
        Notifier.wake = crash
    monitor = Monitor(store, ReplaySource(recording, speed=float(os.environ.get("CRASH_SPEED", "50"))),
                      engine=AlarmEngine(store, RULES),
                      notifier=notifier, batch_rows=10, tick_s=0.05)
    monitor.run(duration_s=120)


if __name__ == "__main__":
    main(*sys.argv[1:5])
