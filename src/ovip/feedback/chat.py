"""One OpenAI-compatible chat-completions client (vLLM, SGLang, OpenAI) for training and evaluation.

The paper serves G_r and G_diff behind HTTP services (Appendix B.2, "Software infrastructure"); the authors'
client retries forever on any error (`trainer.py`, `_get_critic_score`). Here every call is bounded:

- each attempt has a TOTAL deadline, `CallLimits.timeout` seconds for connect + send + read together. httpx's
  (and so the `openai` client's) `timeout` bounds each socket read, so a server that sends one byte per second
  holds such a call for as long as it likes; here the attempt runs as an asyncio task that is cancelled at
  its deadline (https://www.python-httpx.org/advanced/timeouts/ describes the per-operation timeouts);
- at most `1 + max_retries` attempts; retried are what may pass (timeouts, connection errors, HTTP 408, 409,
  429, 5xx, the statuses the `openai` client retries), after `retry_wait * 2**i` seconds, or the server's
  `Retry-After` when it is longer, never more than `max_wait` (a longer Retry-After ends the call now);
- a reply body is read up to `max_reply_bytes`; a longer one, a malformed one or an empty answer is a failed
  call at once (sending it again would give the same).

So a call returns within `CallLimits.worst_case` = (1 + max_retries) * timeout + max_retries * max_wait
seconds, whatever the server does, and whatever goes wrong comes back as `Reply(text=None, error=...)` with the
error text kept: a failure is a value that the caller counts, never an exception from inside the loop.

Requests run on one background asyncio event loop (a daemon thread), so callers stay synchronous and a
group of requests (`complete_many`) runs concurrently.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import threading
import time
from dataclasses import dataclass

import httpx

# vLLM and SGLang accept any key; real endpoints answer 401 to this one, which is a counted failure.
PLACEHOLDER_API_KEY = "EMPTY"
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class CallLimits:
    """How long one call may take and how often it is tried (see the module docstring)."""

    timeout: float = 30.0  # seconds per attempt, connect + send + read together
    max_retries: int = 2  # attempts after the first
    retry_wait: float = 1.0  # first wait before a retry, doubled for each further one
    max_wait: float = 10.0  # the longest wait before a retry, Retry-After included
    max_reply_bytes: int = 1_000_000  # a judge verdict or a 128-token description is a few kB

    def __post_init__(self):
        for name in ("timeout", "retry_wait", "max_wait"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "timeout" and value == 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.max_retries < 0 or self.max_reply_bytes < 1:
            raise ValueError(f"max_retries must be >= 0 and max_reply_bytes >= 1, got {self}")

    @property
    def worst_case(self) -> float:
        """Seconds one call can take at most: every attempt to its deadline, every wait at its longest."""
        return (1 + self.max_retries) * self.timeout + self.max_retries * self.max_wait

    def wait(self, retry: int) -> float:
        return min(self.retry_wait * 2**retry, self.max_wait)


@dataclass(frozen=True)
class Reply:
    """The assistant's text, or None and why; `attempts` requests were sent over `seconds`."""

    text: str | None
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.text is not None


class _Failed(Exception):
    def __init__(self, message: str, retry: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retry, self.retry_after = retry, retry_after


class ChatClient:
    """Chat completions from `base_url` (e.g. "http://127.0.0.1:8000/v1") with `model`, within `limits`.

    The key is read from the environment variable `api_key_env`; when it is unset a placeholder is sent.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 limits: CallLimits = CallLimits()):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.limits = model, limits
        self.api_key = os.environ.get(api_key_env) or PLACEHOLDER_API_KEY
        self._http: httpx.AsyncClient | None = None

    def complete(self, messages: list[dict], **params) -> Reply:
        """One chat completion of `messages` (text or multimodal content lists); `params` are request
        fields such as temperature, top_p, max_tokens. Returns within `limits.worst_case` seconds."""
        return self.complete_many([messages], **params)[0]

    def complete_many(self, batch: list[list[dict]], concurrency: int = 16, **params) -> list[Reply]:
        """`complete` for each of `batch`, at most `concurrency` at a time; same order and length."""
        if not batch:
            return []
        waves = math.ceil(len(batch) / max(1, concurrency))
        future = asyncio.run_coroutine_threadsafe(self._many(batch, concurrency, params), _event_loop())
        # Each call ends within worst_case on its own; the margin only covers scheduling.
        return future.result(timeout=waves * self.limits.worst_case + 30)

    def close(self) -> None:
        if self._http is not None:
            asyncio.run_coroutine_threadsafe(self._http.aclose(), _event_loop()).result(timeout=10)
            self._http = None

    async def _many(self, batch, concurrency, params) -> list[Reply]:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(messages):
            async with gate:
                return await self._call({"model": self.model, "messages": messages, **params})

        return list(await asyncio.gather(*(one(m) for m in batch)))

    async def _call(self, body: dict) -> Reply:
        limits, start = self.limits, time.monotonic()
        for attempt in range(1 + limits.max_retries):
            try:
                text = await asyncio.wait_for(self._attempt(body), limits.timeout)
                return Reply(text, None, attempt + 1, time.monotonic() - start)
            except (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException):
                failure = _Failed(f"timeout: no complete reply within {limits.timeout:g}s", retry=True)
            except _Failed as e:
                failure = e
            except httpx.HTTPError as e:  # connect refused, reset, broken chunking, ...
                reason = _short(str(e)) or "the connection closed without a reply"
                failure = _Failed(f"connection error: {type(e).__name__}: {reason}", retry=True)
            except Exception as e:  # a client bug must still be a failed call, not a crash
                failure = _Failed(f"{type(e).__name__}: {_short(str(e))}", retry=False)
            wait = limits.wait(attempt)
            if failure.retry_after is not None and failure.retry_after > limits.max_wait:
                message = f"{failure}; Retry-After {failure.retry_after:g}s > max_wait {limits.max_wait:g}s"
                failure = _Failed(message, retry=False)
            if not failure.retry or attempt == limits.max_retries:
                break
            await asyncio.sleep(max(wait, failure.retry_after or 0.0))
        return Reply(None, f"{failure} ({attempt + 1} attempts, {time.monotonic() - start:.1f}s)",
                     attempt + 1, time.monotonic() - start)

    async def _attempt(self, body: dict) -> str:
        if self._http is None:
            # httpx's own per-operation timeouts stay as a backstop; the deadline is the wait_for above.
            self._http = httpx.AsyncClient(timeout=self.limits.timeout)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with self._http.stream("POST", self.url, json=body, headers=headers) as response:
            raw = await _read(response, self.limits.max_reply_bytes)
            if response.status_code >= 400:
                raise _Failed(f"HTTP {response.status_code}: {_short(_error_message(raw))}",
                              retry=response.status_code in RETRY_STATUSES,
                              retry_after=_retry_after(response.headers.get("retry-after")))
        try:
            text = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Failed(f"malformed reply ({type(e).__name__}): {_short(raw.decode('utf-8', 'replace'))}",
                          retry=False) from None
        if not isinstance(text, str) or not text:
            raise _Failed("empty reply", retry=False)
        return text


async def _read(response: httpx.Response, limit: int) -> bytes:
    """The body, or a non-retried failure as soon as it is known to exceed `limit` bytes."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _Failed(f"reply of {int(declared)} bytes > max_reply_bytes {limit}", retry=False)
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _Failed(f"reply larger than max_reply_bytes {limit}", retry=False)
        chunks.append(chunk)
    return b"".join(chunks)


def _error_message(raw: bytes) -> str:
    """The `error.message` of an OpenAI-style error body, else the body itself."""
    try:
        error = json.loads(raw)["error"]
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110, section 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's background event loop for service calls, started on first use."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="ovip-chat", daemon=True).start()
        return _loop


def _forget_loop() -> None:  # a forked child has the loop object but not its thread
    global _loop
    _loop = None


os.register_at_fork(after_in_child=_forget_loop)
