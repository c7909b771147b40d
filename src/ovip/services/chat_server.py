"""A small OpenAI-compatible chat-completions server, for tests and demos.

The paper runs its judge, describer and diffusion model as FastAPI services called over HTTP (Appendix B.2,
"Software infrastructure"). This server speaks the subset of the OpenAI API that `ovip.services.chat` uses, so
the real clients can be exercised against a real local socket: `reply_fn(messages, params) -> str` supplies the
assistant's text; raising `ReplyError(status, message)` answers with that HTTP status, any other exception with
500. `reply_fn` runs in a worker thread, so a slow one (`time.sleep`) does not block other requests.

Every request body is checked before `reply_fn` sees it (`chat_request`): a field of the wrong type or out of
range is a 400 that names it (`messages[1].content[0].text: ...`), never a 500 from deep inside `reply_fn`
that a client would retry. The text of all messages together is capped at `max_prompt_chars`.

    app = make_app(lambda messages, params: "Score: 7")
    with serve_in_thread(app) as base_url:           # "http://127.0.0.1:<free port>/v1"
        OpenAIJudge(base_url, model="any").judge(q, responses, reference)
"""

from __future__ import annotations

import json
import math
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


MAX_PROMPT_CHARS = 100_000  # ~25k tokens: the paper's judge and description prompts are ~0.5k and ~1k tokens
ROLES = ("system", "developer", "user", "assistant", "tool")
_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_INTEGERS = {
    "max_tokens": (1, 2**31 - 1),
    "max_completion_tokens": (1, 2**31 - 1),
    "seed": (-(2**63), 2**64 - 1),
}


def make_app(
    reply_fn: ReplyFn,
    model: str = "ovip-local",
    strict_model: bool = False,
    max_prompt_chars: int = MAX_PROMPT_CHARS,
) -> FastAPI:
    """A FastAPI app with POST /v1/chat/completions, GET /v1/models and GET /health.

    `params` passed to `reply_fn` are the request's other fields (model, temperature, top_p, max_tokens, ...),
    checked by `chat_request`. With `strict_model` a request for another model than `model` is 404, as vLLM
    and OpenAI answer.
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
        except Exception as e:
            return _error(400, f"the body is not JSON: {type(e).__name__}: {e}")
        try:
            messages, params = chat_request(body, max_prompt_chars)
        except ReplyError as e:
            return _error(e.status_code, e.message)
        if strict_model and params.get("model") != model:
            if "model" not in params:
                return _error(400, f"model: required (this server has '{model}')")
            return _error(404, f"The model '{params['model']}' does not exist (this server has '{model}')")
        try:
            text = await run_in_threadpool(reply_fn, messages, params)
        except ReplyError as e:
            return _error(e.status_code, e.message)
        except Exception as e:
            return _error(500, f"{type(e).__name__}: {e}")
        return JSONResponse(_completion(str(text), params.get("model", model)))

    return app


def chat_request(body, max_prompt_chars: int = MAX_PROMPT_CHARS) -> tuple[list[dict], dict]:
    """(messages, the other fields) of a chat-completions request body, or `ReplyError(400)` naming the first
    field that is missing, of the wrong type or out of range (the fields of
    https://platform.openai.com/docs/api-reference/chat/create that this server reads; others pass through).
    """
    if not isinstance(body, dict):
        raise ReplyError(400, f"the body must be a JSON object, got {type(body).__name__}")
    params = dict(body)
    messages = params.pop("messages", None)
    if not isinstance(messages, list) or not messages:
        raise ReplyError(400, f"messages: a non-empty list of message objects, got {_shown(messages)}")
    chars = 0
    for i, message in enumerate(messages):
        chars += _message_chars(message, f"messages[{i}]")
    if chars > max_prompt_chars:
        raise ReplyError(
            400, f"messages: {chars} characters of text > the server's cap of {max_prompt_chars}"
        )
    if "model" in params and (not isinstance(params["model"], str) or not params["model"]):
        raise ReplyError(400, f"model: a non-empty string, got {_shown(params['model'])}")
    for name, (low, high) in _NUMBERS.items():
        value = params.get(name)
        if value is not None and not (_is_number(value) and low <= value <= high):
            raise ReplyError(400, f"{name}: a number in [{low:g}, {high:g}], got {_shown(value)}")
    for name, (low, high) in _INTEGERS.items():
        value = params.get(name)
        if value is not None and not (_is_integer(value) and low <= value <= high):
            raise ReplyError(400, f"{name}: an integer in [{low}, {high}], got {_shown(value)}")
    n = params.get("n")
    if n is not None and not (_is_integer(n) and n == 1):
        raise ReplyError(400, f"n: this server answers one choice per request (n = 1), got {_shown(n)}")
    stream = params.get("stream")
    if stream is not None and stream is not False:
        raise ReplyError(400, f"stream: not served (false or absent), got {_shown(stream)}")
    stop = params.get("stop")
    if not (
        stop is None
        or isinstance(stop, str)
        or (isinstance(stop, list) and all(isinstance(x, str) for x in stop))
    ):
        raise ReplyError(400, f"stop: a string or a list of strings, got {_shown(stop)}")
    return messages, params


def _message_chars(message, where: str) -> int:
    """Characters of text in one message; `ReplyError(400)` for a malformed one."""
    if not isinstance(message, dict):
        raise ReplyError(400, f"{where}: a message object with role and content, got {_shown(message)}")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise ReplyError(400, f"{where}.role: one of {', '.join(ROLES)}, got {_shown(role)}")
    if not isinstance(message.get("name", ""), str):
        raise ReplyError(400, f"{where}.name: a string, got {_shown(message['name'])}")
    content = message.get("content")
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list) or not content:
        raise ReplyError(
            400, f"{where}.content: a string or a non-empty list of content parts, got {_shown(content)}"
        )
    chars = 0
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ReplyError(400, f"{at}.text: a string, got {_shown(part.get('text'))}")
            chars += len(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            if not (isinstance(image, dict) and isinstance(image.get("url"), str)):
                raise ReplyError(400, f"{at}.image_url: an object with a url string, got {_shown(image)}")
        else:
            raise ReplyError(400, f"{at}: an object of type text or image_url, got {_shown(part)}")
    return chars


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def _shown(value, limit: int = 80) -> str:
    """A JSON value as an error message shows it: its JSON type and the start of its text."""
    if value is None:
        return "null"
    text = json.dumps(value)
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{_JSON_TYPES.get(type(value), type(value).__name__)} {text}"


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
    kind = "server_error" if status_code >= 500 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": status_code}}, status_code)


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
