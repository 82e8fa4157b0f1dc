"""`twin api`'s gunicorn worker: slow clients cannot block it, requests arriving in pieces are
served whole, and gunicorn's own refusals (414, bad header, 431) and an over-long chunked body are
JSON errors. Against a real `twin api` (2 workers) on 127.0.0.1 and a free port."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import pytest

from twinlib.api.worker import request_complete
from twinlib.simulate import simulate_fleet
from twinlib.store import open_store

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "worker-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`twin api --workers 2` on a small database; yields its port."""
    tmp = tmp_path_factory.mktemp("worker")
    fleet = simulate_fleet(assets=2, hours=0.1, freq_s=1.0, seed=3, start="2026-02-10 00:00:00",
                           fault_rate=0.0)
    s = open_store(tmp / "twin.db", create=True)
    s.load_readings(fleet.readings)
    s.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_SETTINGS=str(tmp / "none.toml"), TWIN_API_TOKEN=TOKEN,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(tmp / "api.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "twinlib", "api", "--db", str(tmp / "twin.db"),
                             "--port", str(port), "--workers", "2"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "api.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _get(port, path="/data", timeout=10):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _exchange(port, *parts: bytes, timeout=20) -> bytes:
    """Send ``parts`` one after another on one connection, then read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for part in parts:
            s.sendall(part)
            time.sleep(0.05)  # separate segments: the server must put the request together
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def _json_error(reply: bytes) -> tuple[int, dict, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_slow_clients_do_not_block_the_workers(server):
    slow = []
    try:
        # 40 connections sending half a request head each (slowloris), 5 sending half a body,
        # 5 that sent a whole request and never read nor close: more than any pool of threads.
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", server))
            s.sendall(b"GET /data HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", server))
            s.sendall(b"POST /readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{\"readings\": [")
            slow.append(s)
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", server))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /data?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
            slow.append(s)
        # Every normal request is still answered (gunicorn's sync workers answered none).
        for _ in range(8):
            status, body = _get(server)
            assert status == 200 and len(json.loads(body)) == 10
        # A slow one still gets its answer once it finishes (within the 10 s head timeout).
        late = socket.create_connection(("127.0.0.1", server), timeout=20)
        slow.append(late)
        late.sendall(b"GET /data HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        late.sendall(b"1\r\n\r\n")
        assert late.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for s in slow:
            s.close()


def test_requests_arriving_in_pieces_are_served_whole(server):
    reply = _exchange(server, b"GET /da", b"ta?limit=3 HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n")
    assert reply.startswith(b"HTTP/1.1 200")
    assert len(json.loads(reply.partition(b"\r\n\r\n")[2])) == 3
    body = json.dumps({"readings": [{"asset_id": "pump-09", "timestamp": "2026-02-11 00:00:00",
                                     "temperature": 60.0, "vibration": 0.3,
                                     "pressure": 40.0}]}).encode()
    head = (f"POST /readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    reply = _exchange(server, head, body[:20], body[20:])
    assert reply.startswith(b"HTTP/1.1 200") and json.loads(reply.partition(b"\r\n\r\n")[2])["inserted"] == 1
    chunked = (f"POST /readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    reply = _exchange(server, chunked, b"%x\r\n" % len(body) + body + b"\r\n", b"0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and json.loads(reply.partition(b"\r\n\r\n")[2])["duplicates"] == 1


def test_a_client_expecting_100_continue_is_told_to_send_its_body(server):
    body = b'{"readings": []}'
    head = (f"POST /readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Expect: 100-continue\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:
        s.sendall(head)
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any body byte
        s.sendall(body)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert b"HTTP/1.1 200 OK" in reply and reply.endswith(b'"notes":[]}')


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /data HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    (b"GET /data HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
    (b"GARBAGE\r\n\r\n", 400),
])
def test_gunicorn_refusals_are_json(server, request_bytes, status):
    code, headers, body = _json_error(_exchange(server, request_bytes))
    assert code == status and body["status"] == status and body["message"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_a_chunked_body_over_16_mib_is_413_through_the_server(server):
    head = (f"POST /readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    data = b'{"readings": []}' + b" " * (16 * 1024 * 1024 + 200_000)
    chunks = [b"%x\r\n" % len(data[i:i + (1 << 20)]) + data[i:i + (1 << 20)] + b"\r\n"
              for i in range(0, len(data), 1 << 20)]
    with socket.create_connection(("127.0.0.1", server), timeout=30) as s:
        s.sendall(head)
        try:
            for c in chunks + [b"0\r\n\r\n"]:
                s.sendall(c)
        except OSError:  # the server may answer and close before the rest is sent
            pass
        reply = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    code, _, body = _json_error(reply)
    assert code == 413 and body["parameter"] == "body"


@pytest.mark.parametrize("data,whole", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
    (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc", False),
    (b"POST / HTTP/1.1\r\ncontent-length:5\r\n\r\nabcde", True),
    (b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\nab", True),   # over max_body: app says 413
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n", False),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", True),  # broken: 400 now
    (b"GET /" + b"a" * 2000, True),  # over max_head without an end: 414 now
])
def test_request_complete(data, whole):
    assert request_complete(data, max_head=1000, max_body=1000) is whole


def test_a_body_of_countless_tiny_chunks_is_walked_once_and_at_most_so_far():
    from twinlib.api.worker import MAX_CHUNKS, _Framing
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    framing, buf = _Framing(), bytearray(head)
    for _ in range(4):  # arriving in pieces: each piece is walked from where the last stopped
        buf += b"1\r\nx\r\n" * 1000
        assert framing.complete(buf, 10**6, 1 << 24) is False
    assert framing.chunks == 4000
    buf += b"1\r\nx\r\n" * MAX_CHUNKS  # past the budget: handed over without its end
    assert framing.complete(buf, 10**6, 1 << 24) is True and framing.chunks == MAX_CHUNKS


@pytest.fixture
def loop_worker(request, monkeypatch, store, make_app):
    """A BufferedSyncWorker's loop in a thread on a listener of its own, with tiny limits
    (indirect parameters: gunicorn settings)."""
    import threading

    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from twinlib.api.worker import BufferedSyncWorker

    monkeypatch.setattr(BufferedSyncWorker, "max_pending", 3)
    monkeypatch.setattr(BufferedSyncWorker, "header_timeout", 1.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    cfg = Config()
    for key, value in getattr(request, "param", {}).items():
        cfg.set(key, value)
    worker = BufferedSyncWorker(0, os.getppid(), [listener], None, 30, cfg, Logger(cfg))
    worker.PIPE = os.pipe()
    worker.wsgi = make_app(store.path)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    worker.alive = False
    os.write(worker.PIPE[1], b"x")
    thread.join(10)
    listener.close()


def _closed_by_server(s: socket.socket) -> bool:
    s.settimeout(20)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def test_the_oldest_waiting_connections_are_dropped_past_the_limit(loop_worker, monkeypatch):
    from twinlib.api.worker import BufferedSyncWorker

    monkeypatch.setattr(BufferedSyncWorker, "header_timeout", 60.0)  # only the limit closes
    conns = [socket.create_connection(("127.0.0.1", loop_worker)) for _ in range(5)]
    try:
        for s in conns:  # accepted in this order: the oldest two go when the 4th and 5th come
            s.sendall(b"GET /data HTTP/1.1\r\nX-Slow: ")
        assert _closed_by_server(conns[0]) and _closed_by_server(conns[1])
        conns[4].sendall(b"1\r\n\r\n")  # the newest ones are still there, and answered
        conns[4].settimeout(20)
        assert conns[4].recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for s in conns:
            s.close()


def test_a_head_that_does_not_arrive_in_time_is_closed(loop_worker):
    with socket.create_connection(("127.0.0.1", loop_worker)) as s:
        s.sendall(b"GET /data HTTP/1.1\r\nX-Slow: ")
        assert _closed_by_server(s)  # after header_timeout (1 s here)
    assert _get(loop_worker)[0] == 200


# -- keep-alive, pipelining, the plain-request reader -----------------------------------------
#: bytes read past an answer, by connection: pipelined answers may arrive in one segment
_AHEAD: "weakref.WeakKeyDictionary[socket.socket, bytes]" = weakref.WeakKeyDictionary()


def _read_answer(s: socket.socket) -> tuple[bytes, bytes]:
    """One framed answer (head, body) from a kept-alive connection; bytes of the next answer
    that came with it are kept for the next call (they must frame as an answer there)."""
    data = _AHEAD.pop(s, b"")
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([line.split(b":", 1)[1] for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk
        body += chunk
    if len(body) > length:
        _AHEAD[s] = body[length:]
        body = body[:length]
    return head, body


def test_a_connection_is_kept_for_the_next_request_and_closed_when_asked(server):
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:
        for path in (b"/data", b"/data?limit=2", b"/health"):
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = _read_answer(s)
            assert head.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in head
            assert b"X-Content-Type-Options: nosniff" in head
        assert len(json.loads(body)) >= 1
        s.sendall(b"GET /data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body = _read_answer(s)
        assert b"Connection: close" in head and len(json.loads(body)) == 10
        assert _closed_by_server(s)
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:  # HTTP/1.0: closes
        s.sendall(b"GET /data HTTP/1.0\r\n\r\n")
        head, _ = _read_answer(s)
        assert head.startswith(b"HTTP/1.0 200") and b"Connection: close" in head
        assert _closed_by_server(s)


def test_pipelined_requests_are_answered_in_order(server):
    body = b'{"readings": []}'
    post = (f"POST /readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:
        s.sendall(b"GET /data?limit=1 HTTP/1.1\r\nHost: x\r\n\r\n" + post
                  + b"GET /data?limit=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        sizes = []
        for _ in range(3):
            head, answer = _read_answer(s)
            assert head.startswith(b"HTTP/1.1 200")
            sizes.append(json.loads(answer))
        assert len(sizes[0]) == 1 and sizes[1]["inserted"] == 0 and len(sizes[2]) == 3
        assert not _AHEAD.get(s)   # nothing after the third answer


def test_a_connection_is_recycled_after_its_request_budget(loop_worker, monkeypatch):
    from twinlib.api.worker import BufferedSyncWorker

    monkeypatch.setattr(BufferedSyncWorker, "max_keepalive_requests", 3)
    with socket.create_connection(("127.0.0.1", loop_worker), timeout=20) as s:
        heads = []
        for _ in range(3):
            s.sendall(b"GET /data HTTP/1.1\r\nHost: x\r\n\r\n")
            heads.append(_read_answer(s)[0])
        assert [b"Connection: keep-alive" in h for h in heads] == [True, True, False]
        assert b"Connection: close" in heads[2] and _closed_by_server(s)


@pytest.mark.parametrize("loop_worker", [{"keepalive": 1}], indirect=True)
def test_an_idle_kept_connection_is_closed_after_the_keepalive_timeout(loop_worker, monkeypatch):
    from twinlib.api.worker import BufferedSyncWorker

    monkeypatch.setattr(BufferedSyncWorker, "header_timeout", 60.0)  # only keep-alive closes
    with socket.create_connection(("127.0.0.1", loop_worker), timeout=20) as s:
        s.sendall(b"GET /data HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"Connection: keep-alive" in _read_answer(s)[0]
        assert _closed_by_server(s)  # no next request: closed, nothing sent
    assert _get(loop_worker)[0] == 200


@pytest.mark.parametrize("head,simple", [
    (b"GET /data HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", True),
    (b"HEAD /data?limit=3&asset=p%2D1 HTTP/1.0\r\n\r\n", True),
    (b"GET /data HTTP/1.1\r\nHost:x \t\r\nUser-Agent: a b\r\n\r\n", True),
    (b"POST /readings HTTP/1.1\r\nHost: x\r\n\r\n", False),           # not GET/HEAD
    (b"GET /data HTTP/1.1\r\nContent-Length: 0\r\n\r\n", False),       # framing: gunicorn's
    (b"GET /data HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", False),
    (b"GET /data HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", False),
    (b"GET /data HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n", False),  # trust: gunicorn's
    (b"GET /data HTTP/1.1\r\nX_Odd: 1\r\n\r\n", False),                 # underscore: dropped there
    (b"GET /data HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", False),       # repeated: 400 there
    (b"GET /data HTTP/1.1\r\nBad Header: 1\r\n\r\n", False),
    (b"GET /data HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", False),
    (b"GET /data HTTP/1.1\r\nX: caf\xe9\r\n\r\n", False),
    (b"GET /data#frag HTTP/1.1\r\n\r\n", False),
    (b"GET http://x/data HTTP/1.1\r\n\r\n", False),
    (b"GET /data HTTP/2.0\r\n\r\n", False),
    (b"\r\nGET /data HTTP/1.1\r\n\r\n", False),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", False),            # over the line limit
])
def test_the_plain_request_reader_takes_only_plain_heads(head, simple):
    from gunicorn.config import Config

    from twinlib.api.http1 import SimpleParser

    parser = SimpleParser(Config())
    for _ in range(2):  # the second time from memory: the same answer
        req = parser.parse(head)
        assert (req is not None) is simple
    if simple:
        assert req.method in ("GET", "HEAD") and req.path.startswith("/")
        assert all(name == name.upper() and "_" not in name for name, _ in req.headers)


@pytest.mark.parametrize("head", [
    b"GET /data HTTP/1.1\r\nHost: example.org:8080\r\nAccept: */*\r\nContent-Type: text/x\r\n\r\n",
    b"GET /a%20b/c?x=1&y=%2F HTTP/1.0\r\nUser-Agent: t\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD //double/slash?q HTTP/1.1\r\nAuthorization: Bearer abc\r\n\r\n",
])
def test_the_plain_reader_gives_the_environ_gunicorn_gives(head):
    """The worker's own environ for plain requests equals gunicorn's ``wsgi.create`` one."""
    from gunicorn import http
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from gunicorn.http import wsgi

    from twinlib.api.http1 import SimpleParser
    from twinlib.api.worker import BufferedSyncWorker, _Buffered

    cfg = Config()
    worker = BufferedSyncWorker(0, os.getppid(), [], None, 30, cfg, Logger(cfg))
    worker._base_environ = wsgi.base_environ(cfg)
    client, server = ("127.0.0.1", 54321), ("127.0.0.1", 5000)
    ours = SimpleParser(cfg).parse(head)
    theirs = next(http.get_parser(cfg, _Buffered(head, None, whole=True), client))
    _, env_ours = worker._simple_environ(ours, None, client, server)
    _, env_theirs = wsgi.create(theirs, None, client, server, cfg)
    objects = ("wsgi.errors", "wsgi.input", "wsgi.early_hints")
    assert {k: v for k, v in env_ours.items() if k not in objects} == \
        {k: v for k, v in env_theirs.items() if k not in objects}
    assert set(env_ours) == set(env_theirs)
    assert env_ours["wsgi.input"].read() == b""


def test_response_headers_are_checked_every_time(monkeypatch):
    """Remembered header pairs skip gunicorn's checks only for pairs it accepted before."""
    from gunicorn.config import Config
    from gunicorn.http.errors import InvalidResponseHeader

    from twinlib.api.http1 import SimpleRequest
    from twinlib.api.worker import _Response

    req = SimpleRequest("GET", "/data", (1, 1), [])
    for _ in range(2):
        resp = _Response(req, None, Config())
        resp.start_response("200 OK", [("Content-Type", "application/json"),
                                       ("Content-Length", "12"), ("Connection", "close"),
                                       ("X-A", " padded ")])
        assert resp.response_length == 12
        assert resp.headers == [("Content-Type", "application/json"), ("Content-Length", "12"),
                                ("X-A", "padded")]  # hop-by-hop dropped, value stripped
        bad = _Response(req, None, Config())
        with pytest.raises(InvalidResponseHeader):
            bad.start_response("200 OK", [("Content-Type", "application/json"),
                                          ("X-B", "line\r\nbreak")])


def test_head_answers_carry_no_body_and_the_connection_goes_on(server):
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:
        s.sendall(b"HEAD /data HTTP/1.1\r\nHost: x\r\n\r\nGET /data?limit=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"\r\n\r\n") < 2:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
        assert rest.startswith(b"HTTP/1.1 200")  # no body bytes between the two answers
        s.settimeout(20)
        second_head, _, body = rest.partition(b"\r\n\r\n")
        length = int(second_head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += s.recv(65536)
        assert len(json.loads(body)) == 1
