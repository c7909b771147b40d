"""`ovip serve` in a subprocess, for the tests that need a real server process: one to SIGSTOP (a hung
replica), or one whose event loop a test must not share (a server that stalls must fail the test, not freeze
it)."""

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def ovip_serve(
    service: str,
    *args: str,
    stderr: Path,
    env: dict | None = None,
    nofile: int | None = None,
    startup: float = 60.0,
):
    """`ovip serve SERVICE --model world ARGS` on a free loopback port, stderr to the file `stderr`, at most
    `nofile` file descriptors open (soft and hard limit) when given; yields (base URL ending in /v1, the
    process) once /health answers. The process is killed on exit, stopped or not."""
    port = free_port()
    command = [sys.executable, "-m", "ovip.cli", "serve", service, "--model", "world", "--port", str(port)]

    def limit():
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.DEVNULL,
            preexec_fn=limit,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
    try:
        deadline = time.monotonic() + startup
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, stderr.read_text()[-3000:]
            assert time.monotonic() < deadline, f"ovip serve {service} did not start in {startup:g}s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        proc.send_signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
        proc.kill()
        proc.wait(timeout=30)
