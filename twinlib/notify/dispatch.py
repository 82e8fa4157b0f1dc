"""Deliver notifications in the background, with retries and back-off.

The monitor hands alarm events to `Notifier.submit`, which only appends to a bounded queue and
returns at once: a slow or failing endpoint can never stall ingestion. Each channel has its own
worker thread and queue, so a dead webhook does not delay the e-mail. A failed attempt is retried
after `backoff_s * 2**k` seconds (capped at `max_backoff_s`), up to `retries` times; after that the
event is reported as failed in the log and in `stats()`. When a queue is full the oldest waiting
notification is dropped, and that is logged and counted too — never silently.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Iterable, Sequence

from twinlib.notify.channels import Channel, DeliveryError
from twinlib.notify.message import event_payload

__all__ = ["Notifier", "ChannelStats"]

log = logging.getLogger("twinlib.notify")


class ChannelStats:
    """Counters of one channel's deliveries (read them through `Notifier.stats`)."""

    __slots__ = ("queued", "sent", "failed", "retried", "dropped", "abandoned", "last_error")

    def __init__(self):
        self.queued = self.sent = self.failed = self.retried = 0
        self.dropped = self.abandoned = 0
        self.last_error: str | None = None

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


class _Worker:
    """The queue and thread that deliver one channel's notifications in order."""

    def __init__(self, channel: Channel, *, retries: int, backoff_s: float, max_backoff_s: float,
                 queue_size: int):
        self.channel = channel
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.queue: collections.deque = collections.deque()
        self.queue_size = queue_size
        self.cond = threading.Condition()
        self.stats = ChannelStats()
        self.closing = False
        self.deadline = float("inf")
        self.busy = False
        self.thread = threading.Thread(target=self._run, name=f"notify-{channel.name}",
                                       daemon=True)
        self.thread.start()

    def put(self, payload: dict) -> None:
        with self.cond:
            if len(self.queue) >= self.queue_size:
                old = self.queue.popleft()
                self.stats.dropped += 1
                log.error("notify %s: queue full (%d), dropped the oldest notification: %s %s %s",
                          self.channel.name, self.queue_size, old.get("kind"),
                          old.get("asset_id"), old.get("rule"))
            self.queue.append(payload)
            self.stats.queued += 1
            self.cond.notify()

    def _wait(self, seconds: float) -> bool:
        """Sleep for a back-off; False when the close deadline arrives first."""
        end = min(time.monotonic() + seconds, self.deadline)
        with self.cond:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
        return time.monotonic() < self.deadline

    def _deliver(self, payload: dict) -> None:
        attempt = 0
        while True:
            try:
                self.channel.send(payload)
                self.stats.sent += 1
                return
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a channel bug must not kill the worker
                error = f"{type(exc).__name__}: {exc}"
            self.stats.last_error = error
            if attempt >= self.retries:
                self.stats.failed += 1
                log.error("notify %s: giving up after %d attempts (%s) for %s %s %s",
                          self.channel.name, attempt + 1, error, payload.get("kind"),
                          payload.get("asset_id"), payload.get("rule"))
                return
            delay = min(self.backoff_s * (2 ** attempt), self.max_backoff_s)
            attempt += 1
            self.stats.retried += 1
            log.warning("notify %s: attempt %d failed (%s); retrying in %.1f s",
                        self.channel.name, attempt, error, delay)
            if not self._wait(delay):
                self.stats.abandoned += 1
                log.error("notify %s: shutting down, not delivered: %s %s %s", self.channel.name,
                          payload.get("kind"), payload.get("asset_id"), payload.get("rule"))
                return

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closing:
                    self.cond.wait()
                if not self.queue or time.monotonic() >= self.deadline:
                    left = len(self.queue)
                    if left:
                        self.stats.abandoned += left
                        log.error("notify %s: shutting down with %d notifications undelivered",
                                  self.channel.name, left)
                        self.queue.clear()
                    return
                payload = self.queue.popleft()
                self.busy = True
            try:
                self._deliver(payload)
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()

    def idle(self) -> bool:
        with self.cond:
            return not self.queue and not self.busy

    def close(self, deadline: float) -> None:
        with self.cond:
            self.closing = True
            self.deadline = deadline
            self.cond.notify_all()


class Notifier:
    """Fan alarm events out to channels without ever blocking the caller.

    >>> n = Notifier([])          # no channels configured: submitting is a no-op
    >>> n.submit([{"kind": "raised"}])
    0
    >>> n.close()
    """

    def __init__(self, channels: Sequence[Channel], *, retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, queue_size: int = 1000):
        if retries < 0 or backoff_s < 0 or queue_size < 1:
            raise ValueError("retries and backoff_s must be >= 0, queue_size >= 1")
        self.channels = list(channels)
        self._workers = [
            _Worker(ch, retries=int(getattr(ch, "retries", retries)),
                    backoff_s=float(getattr(ch, "backoff_s", backoff_s)),
                    max_backoff_s=float(max_backoff_s), queue_size=int(queue_size))
            for ch in self.channels]
        self._closed = False

    def submit(self, events: Iterable[Any]) -> int:
        """Queue notifications for these alarm events; returns how many were queued."""
        if self._closed:
            raise RuntimeError("Notifier is closed")
        queued = 0
        for event in events:
            payload = event_payload(event)
            for worker in self._workers:
                if worker.channel.wants(payload):
                    worker.put(dict(payload))
                    queued += 1
        return queued

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was delivered or gave up (True if all done)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(w.idle() for w in self._workers):
                return True
            time.sleep(0.01)
        return all(w.idle() for w in self._workers)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers; deliveries still pending after `timeout` seconds are abandoned."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.close(deadline)
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
            if worker.thread.is_alive():  # stuck in a slow send: what waits behind it is lost
                with worker.cond:
                    left = len(worker.queue)
                    worker.queue.clear()
                    worker.stats.abandoned += left
                if left:
                    log.error("notify %s: shutting down with %d notifications undelivered",
                              worker.channel.name, left)

    def stats(self) -> dict:
        """Per-channel counters: queued, sent, failed, retried, dropped, abandoned, last_error."""
        return {w.channel.name: w.stats.as_dict() for w in self._workers}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
