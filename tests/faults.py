"""A misbehaving OpenAI-compatible server on a local socket, for fault-injection tests of the service clients.

The paper's judge, describer and diffusion model are HTTP services (Appendix B.2, "Software infrastructure");
what such services do on a bad day is what this server does on purpose, at the socket level: HTTP errors, 429
with Retry-After, a request that is never answered, a reply trickled one byte at a time, a connection reset,
a malformed body and an oversized one. `script(index, request) -> Fault` decides per request (`index` counts
requests from 0, `request` is the parsed JSON body); `log` keeps (kind, request) for every request, so a test
can count what was injected and compare with what a client counted.

    with FaultServer(lambda i, request: Fault("status", status=500) if i == 0 else Fault("ok")) as server:
        ChatClient(server.url, "m").complete([{"role": "user", "content": "hi"}])   # retried once, then ok

Every reply closes its connection ("Connection: close"), so each attempt of a client is one request here.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("ok", "status", "hang", "trickle", "reset", "malformed", "oversized")


@dataclass(frozen=True)
class Fault:
    """What to answer. kind: ok (`text` as a completion) | status (HTTP `status`, with `retry_after`) |
    hang (read the request, never answer) | trickle (a valid completion, one byte every `interval` s) |
    reset (close with a TCP RST) | malformed (200 with a broken JSON body) | oversized (200 with `size`
    bytes, with a Content-Length header when `declared`)."""

    kind: str = "ok"
    text: str = "Score: 5"
    status: int = 500
    retry_after: str | None = None
    interval: float = 1.0
    size: int = 2_000_000
    declared: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {KINDS}")


Script = Callable[[int, dict], Fault]


class FaultServer:
    """Serve `script` on 127.0.0.1 (a free port) from a background thread; `url` ends in /v1."""

    def __init__(self, script: Script):
        self.script = script
        self.log: list[tuple[str, dict]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-server", daemon=True)
        self._lock = threading.Lock()
        self.url = ""

    def __enter__(self) -> FaultServer:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self._server = server
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # hung handlers end here, quietly

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def kinds(self) -> list[str]:
        with self._lock:
            return [kind for kind, _ in self.log]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            request = json.loads(await reader.readexactly(length) or b"{}")
            with self._lock:
                fault = self.script(len(self.log), request)
                self.log.append((fault.kind, request))
            await self._answer(fault, request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client gave up (its deadline) or the request was cut: nothing to answer
        except asyncio.CancelledError:
            pass  # the server is stopping; ending normally keeps asyncio's stream callback from logging it
        finally:
            writer.close()

    async def _answer(self, fault: Fault, request: dict, writer: asyncio.StreamWriter) -> None:
        if fault.kind == "hang":
            await asyncio.sleep(3600)
        if fault.kind == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if fault.kind == "status":
            body = json.dumps(
                {"error": {"message": f"injected {fault.status}", "code": fault.status}}
            ).encode()
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            await _send(writer, fault.status, body, extra)
        elif fault.kind == "malformed":
            await _send(writer, 200, b'{"id": "x", "choices": [{"message": ')
        elif fault.kind == "oversized":
            writer.write(_head(200, fault.size if fault.declared else None, {}))
            block = b" " * 65536
            for start in range(0, fault.size, len(block)):
                writer.write(block[: fault.size - start])
                await writer.drain()
        else:
            body = json.dumps(completion(fault.text, request.get("model", "m"))).encode()
            if fault.kind == "ok":
                await _send(writer, 200, body)
            else:  # trickle
                writer.write(_head(200, len(body), {}))
                for i in range(len(body)):
                    writer.write(body[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(fault.interval)


def completion(text: str, model: str) -> dict:
    """A chat.completion object holding `text`."""
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def _head(status: int, length: int | None, extra: dict) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", "Connection: close"]
    lines += [f"Content-Length: {length}"] if length is not None else []
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict | None = None) -> None:
    writer.write(_head(status, len(body), extra or {}) + body)
    await writer.drain()
