"""A small OpenAI-compatible chat-completions server, for tests and demos.

The paper runs its judge, describer and diffusion model as FastAPI services called over HTTP (Appendix B.2,
"Software infrastructure"). This server speaks the subset of the OpenAI API that `ovip.feedback.chat` uses, so
the real clients can be exercised against a real local socket: `reply_fn(messages, params) -> str` supplies the
assistant's text; raising `ReplyError(status, message)` answers with that HTTP status, any other exception with
500. `reply_fn` runs in a worker thread, so a slow one (`time.sleep`) does not block other requests.

    app = make_app(lambda messages, params: "Score: 7")
    with serve_in_thread(app) as base_url:           # "http://127.0.0.1:<free port>/v1"
        OpenAIJudge(base_url, model="any").judge(q, responses, reference)
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

ReplyFn = Callable[[list[dict], dict], str]


class ReplyError(Exception):
    """Raise from a `reply_fn` to answer with HTTP `status_code` (e.g. 429, 503) instead of a completion."""

    def __init__(self, status_code: int = 500, message: str = "reply failed"):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def make_app(reply_fn: ReplyFn, model: str = "ovip-local", strict_model: bool = False) -> FastAPI:
    """A FastAPI app with POST /v1/chat/completions, GET /v1/models and GET /health.

    `params` passed to `reply_fn` are the request's other fields (model, temperature, top_p, max_tokens, ...).
    With `strict_model` a request for another model than `model` is 404, as vLLM and OpenAI answer.
    """
    app = FastAPI(title="ovip chat server")
    app.state.requests = 0  # how many completions were asked for; tests read it

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "ovip"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        app.state.requests += 1
        try:
            body = await request.json()
            messages = body.pop("messages")
        except Exception as e:
            return _error(400, f"bad request: {e}")
        if strict_model and body.get("model") != model:
            return _error(404, f"The model '{body.get('model')}' does not exist (this server has '{model}')")
        try:
            text = await run_in_threadpool(reply_fn, messages, body)
        except ReplyError as e:
            return _error(e.status_code, e.message)
        except Exception as e:
            return _error(500, f"{type(e).__name__}: {e}")
        return JSONResponse(_completion(str(text), body.get("model", model)))

    return app


def _completion(text: str, model: str) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "server_error", "code": status_code}}, status_code
    )


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", startup_timeout: float = 10.0) -> Iterator[str]:
    """Run `app` with uvicorn on a free port of `host` in a daemon thread; yield its base URL ending in /v1.

    The server is stopped (and the thread joined) when the block exits, even on error.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn:{port}"
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"chat server on {host}:{port} did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5.0)
        sock.close()
