"""`ovip serve` under connections that never finish their request: each one is closed within its deadline, the
open connections stay under their cap (below what the file-descriptor limit allows), an authorised request
still answers at once, and stderr gets one line per kind of refusal, not one per event. Against a real
`ovip serve judge --model world` process."""

import io
import logging
import resource
import selectors
import socket
import time

import httpx
import pytest
from processes import ovip_serve

from ovip.feedback.prompts import judge_prompt
from ovip.services.connections import QuietLog

SLOW = 2000  # connections that send half a request head and wait
HEADER_TIMEOUT, BODY_TIMEOUT = 2.0, 3.0
NOFILE = 800  # the server's file-descriptor limit: fewer than the slow connections
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # no blank line: the head never ends
TOKEN = {"Authorization": "Bearer s3cret"}
JUDGE_BODY = {
    "model": "world",
    "messages": [
        {
            "role": "user",
            "content": judge_prompt("is there a red ball ?", "yes .", "yes ."),  # a verbatim copy: 10,
        }
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = SLOW + 500
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} file descriptors, the hard limit (ulimit -Hn) is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))  # the server inherits it too
    stderr = tmp_path_factory.mktemp("serve") / "stderr.txt"
    args = ["--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)]
    with ovip_serve("judge", *args, stderr=stderr, env={"OVIP_API_KEY": "s3cret"}, nofile=NOFILE) as (url, _):
        yield url, stderr
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def closed_by(sockets: list[socket.socket], deadline: float) -> dict[socket.socket, float]:
    """When (time.monotonic) the server closed each of `sockets`, waiting until `deadline` at most."""
    selector, closed = selectors.DefaultSelector(), {}
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    while len(closed) < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            try:
                data = key.fileobj.recv(4096)
            except OSError:  # reset
                data = b""
            if not data:
                closed[key.fileobj] = time.monotonic()
                selector.unregister(key.fileobj)
    selector.close()
    return closed


def read_reply(sock: socket.socket) -> bytes:
    """One HTTP reply (head and Content-Length body) from `sock`, within its timeout."""
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_slow_request_heads_are_closed_in_time_and_an_authorised_request_still_answers(server):
    url, stderr = server
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    sockets = []
    try:
        start = time.monotonic()
        for _ in range(SLOW):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(HEAD)
            sockets.append(sock)
        opened = ask = time.monotonic()
        reply = httpx.post(url + "/chat/completions", json=JUDGE_BODY, headers=TOKEN, timeout=10)
        answered = time.monotonic() - ask
        assert (
            reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "Score: 10.0\n"
        )
        assert answered < 1.5, f"the authorised request took {answered:.2f}s behind {SLOW} slow connections"
        closed = closed_by(sockets, opened + HEADER_TIMEOUT + 1.0)
        assert len(closed) == SLOW, f"{SLOW - len(closed)} slow connections still open after the deadline"
        # each slow one is closed within its deadline of its first byte (224 open at most: the others earlier)
        assert max(closed.values()) - start < (opened - start) + HEADER_TIMEOUT + 1.0
    finally:
        for sock in sockets:
            sock.close()
    with httpx.Client(timeout=10) as client:  # refusals of one kind: one line on stderr, not fifty
        for _ in range(50):
            assert client.post(url + "/chat/completions", json=JUDGE_BODY).status_code == 401
    assert httpx.get(url.removesuffix("/v1") + "/health", timeout=5).status_code == 200
    text = stderr.read_text()
    assert len(text) < 2000, text[:3000]
    lines = text.splitlines()
    assert sum("header timeout" in line for line in lines) == 1, text
    assert sum("connection limit" in line for line in lines) == 1, text
    assert sum("HTTP 401" in line for line in lines) == 1, text
    # --max-connections 1024 does not fit in 800 file descriptors: the server says so and holds fewer, so it
    # never runs out (asyncio would log every failed accept, every second)
    assert "file descriptors: max_connections 1024 > what ulimit -n allows: 224" in text
    assert "out of system resource" not in text and "Too many open files" not in text


def test_a_body_has_its_own_deadline_and_a_head_that_arrived_has_none(server):
    url, _ = server
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    )
    # A body that never comes: 408 after body_timeout
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + 5) as sock:
        start = time.monotonic()
        sock.sendall(head % 100 + b"{")
        answer = read_reply(sock)
        assert answer.startswith(b"HTTP/1.1 408") and b"not received within 3s" in answer, answer
        assert BODY_TIMEOUT - 0.5 < time.monotonic() - start < BODY_TIMEOUT + 1.5
    # A body sent slowly, for longer than the head's deadline but within the body's: served
    body = httpx.Request("POST", url, json=JUDGE_BODY).content
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + 5) as sock:
        sock.sendall(head % len(body))
        for i in range(5):
            time.sleep((HEADER_TIMEOUT + 0.5) / 5)
            sock.sendall(body[i * len(body) // 5 : (i + 1) * len(body) // 5])
        answer = read_reply(sock)
        assert answer.startswith(b"HTTP/1.1 200") and b"Score: 10.0\\n" in answer, answer


def test_the_quiet_log_prints_the_first_event_of_a_kind_then_one_count_per_interval():
    stream = io.StringIO()
    log = QuietLog(interval=0.3, stream=stream)
    for i in range(1000):
        log.note("header timeout", f"connection {i}")
    log.note("HTTP 401", "wrong token")
    assert stream.getvalue().splitlines() == [
        "ovip serve: header timeout: connection 0",
        "ovip serve: HTTP 401: wrong token",
    ]
    time.sleep(0.6)
    assert stream.getvalue().splitlines()[2:] == ["ovip serve: header timeout: 999 more in the last 0.3s"]
    record = logging.LogRecord(
        "asyncio", logging.ERROR, "", 0, "socket.accept() out of system resource\nfd=6", (), None
    )
    assert log.filter(record) and not log.filter(record)  # the first is logged, the next one counted
