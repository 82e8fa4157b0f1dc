"""Local test servers for the monitor tests: an HTTP webhook receiver, an SMTP sink, Mosquitto.

Every server binds 127.0.0.1 on a free port and is stopped by its fixture.
"""
from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["free_port", "WebhookReceiver", "SmtpSink", "Mosquitto", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` passes; returns its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class WebhookReceiver:
    """An HTTP server that records every POST; `statuses` scripts the answers (then 200).

    `delay_s` makes every answer slow (a hanging endpoint); `gate` (an Event) holds every
    answer until it is set (at most 120 s): a hanging endpoint for as long as the test needs.
    """

    def __init__(self, statuses=(), delay_s: float = 0.0, gate: threading.Event | None = None):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.gate = gate
        self.answered = 0  # answers fully sent (a slow endpoint receives long before this)
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "body": body, "at": time.monotonic(),
                                              "status": status})
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if receiver.gate is not None:
                    receiver.gate.wait(120)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with receiver.lock:
                    receiver.answered += 1

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if r["status"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """An aiosmtpd server in a thread that keeps every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        sink = self
        self.messages: list = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
                sink.messages.append(envelope)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class Mosquitto:
    """A private Mosquitto broker on a free 127.0.0.1 port, with its own config and data dir."""

    def __init__(self, workdir: Path):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"log_dest file {self.dir / 'mosquitto.log'}\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_until(self._listening, timeout=10):
            self.close()
            raise RuntimeError("mosquitto did not start")

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    @property
    def broker(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish(self, topic: str, payload: str, qos: int = 1) -> None:
        """Publish with the real `mosquitto_pub` client, as a gateway would."""
        exe = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
        subprocess.run([exe, "-h", "127.0.0.1", "-p", str(self.port), "-q", str(qos),
                        "-t", topic, "-m", payload], check=True, timeout=10)

    def publish_many(self, messages: list[tuple[str, str]], qos: int = 1) -> None:
        """Publish several ``(topic, payload)`` over one connection, in order and back to back,
        as a gateway publishing one scan would (one `mosquitto_pub` process per message can
        spread a burst over seconds on a loaded machine)."""
        from paho.mqtt import publish

        publish.multiple([{"topic": t, "payload": p, "qos": qos} for t, p in messages],
                         hostname="127.0.0.1", port=self.port)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
