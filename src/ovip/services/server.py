"""What every `ovip serve` server does before a request reaches its model: a bearer token, a body cap, time
caps, a cap on connections, and where it may listen.

The paper's services are FastAPI apps (Appendix B.2, "Software infrastructure"). Ours bind 127.0.0.1 unless
told otherwise; bound to any other address they refuse to start without a token in `$OVIP_API_KEY`, and
then every request but `GET /health` must carry `Authorization: Bearer <token>` (401 otherwise). A request
body larger than `max_body_bytes` is refused with 413 (by its Content-Length, or while it streams in), and a
request that takes longer than `max_seconds` is answered 504 and its work abandoned. A body that has not
arrived `body_timeout` seconds after its request head is answered 408; a request head that has not arrived
`header_timeout` seconds after its first byte closes the connection, and at most `max_connections` are open
at once (`ovip.services.connections`). Every refusal is written to stderr, one line per kind per 10 s. The
servers never read a path or a URL that a client sends: prompts are text, images go back inline as base64.
What to put in front of a server reachable beyond loopback: docs/services.md.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import sys
from dataclasses import dataclass

from ovip.services.connections import ACCEPT_BATCH, Connections, QuietLog, connection_cap

API_KEY_ENV = "OVIP_API_KEY"


@dataclass(frozen=True)
class ServeLimits:
    """What one `ovip serve` server accepts (the `ovip serve` flags of the same names)."""

    max_body_bytes: int = 1_000_000  # larger request bodies: 413
    max_seconds: float = 600.0  # longer requests: 504
    header_timeout: float = 10.0  # a request head not complete this long after its first byte: closed
    body_timeout: float = 30.0  # a body not complete this long after its request head: 408
    max_connections: int = 1024  # open connections at once (fewer when `ulimit -n` is lower)

    def __post_init__(self):
        for name in ("max_seconds", "header_timeout", "body_timeout"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        if self.max_body_bytes < 1 or self.max_connections < 1:
            raise ValueError(f"max_body_bytes and max_connections must be >= 1, got {self}")


class Guard:
    """ASGI middleware: token, body size and time limits for `app` (see the module docstring). With
    `connections`, it tells them when a request head has arrived and when its reply is sent."""

    def __init__(
        self,
        app,
        api_key: str | None,
        max_body_bytes: int = 1_000_000,
        max_seconds: float = 600.0,
        body_timeout: float = 30.0,
        connections: Connections | None = None,
        log: QuietLog | None = None,
    ):
        self.app, self.api_key = app, api_key
        self.max_body_bytes, self.max_seconds, self.body_timeout = max_body_bytes, max_seconds, body_timeout
        self.connections, self.log = connections, log or QuietLog()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.connections is not None:
            self.connections.started(scope.get("client"))
        try:
            await self._guarded(scope, receive, send)
        finally:
            if self.connections is not None:
                self.connections.finished(scope.get("client"))

    async def _guarded(self, scope, receive, send):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key and scope.get("path") != "/health":
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return await self._refuse(
                    send, 401, "missing or wrong bearer token (Authorization: Bearer $OVIP_API_KEY)"
                )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await self._refuse(send, 413, f"request body of {declared} bytes > {self.max_body_bytes}")
        # The body is read here, up to the cap and within its deadline, and replayed to the app: an error
        # raised from inside the app's own read would reach FastAPI's error middleware and come back as a 500.
        body = bytearray()

        async def read() -> str | None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return "disconnect"
                body.extend(message.get("body", b""))
                if len(body) > self.max_body_bytes:
                    return "too large"
                if not message.get("more_body", False):
                    return None

        try:
            problem = await asyncio.wait_for(read(), self.body_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return await self._refuse(send, 408, f"request body not received within {self.body_timeout:g}s")
        if problem == "disconnect":
            return
        if problem == "too large":
            return await self._refuse(send, 413, f"request body larger than {self.max_body_bytes} bytes")
        replayed, started = False, False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def tracked_send(message):
            nonlocal started
            started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, replay, tracked_send), self.max_seconds)
        except (asyncio.TimeoutError, TimeoutError):
            if not started:
                await self._refuse(send, 504, f"request took longer than {self.max_seconds:g}s")

    async def _refuse(self, send, status: int, message: str) -> None:
        self.log.note(f"HTTP {status}", message)
        # A request whose body was not read to its end leaves nothing to reuse the connection for.
        await reply(send, status, message, close=status in (408, 413))


async def reply(send, status: int, message: str, close: bool = False) -> None:
    """An OpenAI-style error body (`{"error": {"message", "type", "code"}}`) with `status`; with `close`, the
    connection closes after it."""
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + ([(b"connection", b"close")] if close else []),
        }
    )
    await send({"type": "http.response.body", "body": body})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_for(host: str) -> str | None:
    """The token to demand: `$OVIP_API_KEY` when set; bound off-loopback without it is an error."""
    key = os.environ.get(API_KEY_ENV) or None
    if key is None and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without a token: set {API_KEY_ENV} (clients send it as "
            f"their API key), or bind 127.0.0.1"
        )
    return key


def server_config(
    app, host: str, port: int, limits: ServeLimits = ServeLimits(), log: QuietLog | None = None
):
    """The uvicorn config that serves `app` behind a `Guard` and `Connections` with `limits`."""
    import uvicorn

    log = log or QuietLog()
    max_connections = connection_cap(limits.max_connections)
    if max_connections < limits.max_connections:
        log.note(
            "file descriptors",
            f"max_connections {limits.max_connections} > what ulimit -n allows: {max_connections}",
        )
    connections = Connections(max_connections, limits.header_timeout, log)
    guarded = Guard(
        app,
        api_key_for(host),
        limits.max_body_bytes,
        limits.max_seconds,
        limits.body_timeout,
        connections,
        log,
    )
    config = uvicorn.Config(
        guarded,
        host=host,
        port=port,
        http=connections.protocol,
        # the Guard finds a request's connection by the scope's "client": the peer's address, never one that
        # an X-Forwarded-For header names
        proxy_headers=False,
        # uvicorn answers 503 from here on; `Connections` keeps the open connections at max_connections
        limit_concurrency=max_connections + 1,
        backlog=ACCEPT_BATCH,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    # uvicorn and asyncio log each invalid request, each 503 and each failed accept: one line per kind per
    # interval instead (uvicorn.Config has set up its loggers by now)
    for name in ("uvicorn.error", "asyncio"):
        logging.getLogger(name).addFilter(log.filter)
    return config


def serve(app, host: str, port: int, limits: ServeLimits = ServeLimits()) -> None:
    """Run `app` behind a `Guard` with uvicorn until interrupted (the `ovip serve` commands)."""
    import uvicorn

    config = server_config(app, host, port, limits)
    print(
        f"ovip: serving on http://{host}:{port}/v1 "
        f"(token {'required' if config.app.api_key else 'not required'})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(config).run()
