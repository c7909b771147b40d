"""What every `ovip serve` server does before a request reaches its model: a bearer token, a body cap, a
time cap, and where it may listen.

The paper's services are FastAPI apps (Appendix B.2, "Software infrastructure"). Ours bind 127.0.0.1 unless
told otherwise; bound to any other address they refuse to start without a token in `$OVIP_API_KEY`, and
then every request but `GET /health` must carry `Authorization: Bearer <token>` (401 otherwise). A request
body larger than `max_body_bytes` is refused with 413 (by its Content-Length, or while it streams in), and a
request that takes longer than `max_seconds` is answered 504 and its work abandoned. The servers never read
a path or a URL that a client sends: prompts are text, images go back inline as base64.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import sys

API_KEY_ENV = "OVIP_API_KEY"


class Guard:
    """ASGI middleware: token, body size and time limits for `app` (see the module docstring)."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int = 1_000_000, max_seconds: float = 600.0):
        self.app, self.api_key = app, api_key
        self.max_body_bytes, self.max_seconds = max_body_bytes, max_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key and scope.get("path") != "/health":
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return await reply(
                    send, 401, "missing or wrong bearer token (Authorization: Bearer $OVIP_API_KEY)"
                )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await reply(send, 413, f"request body of {declared} bytes > {self.max_body_bytes}")
        # The body is read here, up to the cap, and replayed to the app: an error raised from inside the app's
        # own read would reach FastAPI's error middleware and come back as a 500.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await reply(send, 413, f"request body larger than {self.max_body_bytes} bytes")
            if not message.get("more_body", False):
                break
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
                await reply(send, 504, f"request took longer than {self.max_seconds:g}s")


async def reply(send, status: int, message: str) -> None:
    """An OpenAI-style error body (`{"error": {"message", "type", "code"}}`) with `status`."""
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
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


def serve(app, host: str, port: int, max_body_bytes: int, max_seconds: float) -> None:
    """Run `app` behind a `Guard` with uvicorn until interrupted (the `ovip serve` commands)."""
    import uvicorn

    guarded = Guard(app, api_key_for(host), max_body_bytes, max_seconds)
    print(
        f"ovip: serving on http://{host}:{port}/v1 (token {'required' if guarded.api_key else 'not required'})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(guarded, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
