"""One HTTP transport for the services the loop calls: judge, describer (chat completions) and images.

The paper serves G_r, G_diff and the diffusion model behind HTTP (Appendix B.2, "Software infrastructure");
the authors' client retries forever on any error (`trainer.py`, `_get_critic_score`). Here every call is
bounded:

- each attempt has a TOTAL deadline, `CallLimits.timeout` seconds for connect + send + read together. httpx's
  (and so the `openai` client's) `timeout` bounds each socket read, so a server that sends one byte per second
  holds such a call for as long as it likes; here the attempt runs as an asyncio task that is cancelled at
  its deadline (https://www.python-httpx.org/advanced/timeouts/ describes the per-operation timeouts);
- at most `1 + max_retries` attempts; retried are what may pass (timeouts, connection errors, HTTP 408, 409,
  429, 5xx, the statuses the `openai` client retries), after `retry_wait * 2**i` seconds, or the server's
  `Retry-After` when it is longer, never more than `max_wait` (a longer Retry-After ends the call now);
- a reply body is read up to `max_reply_bytes`; a longer one, a malformed one or an unusable one is a failed
  call at once (sending it again would give the same).

Replicas: `base_urls` may list several servers of one service (a comma-separated string or a list). Each
attempt goes to the live replica with the fewest requests in flight (ties in turn), so load spreads; a
replica that refuses or drops a connection, or does not answer within the deadline (a hung process accepts
connections and never replies), is marked down and the call moves at once to another one. A replica is
skipped for `DOWN_SECONDS` after its first failure, twice as long after each further one up to
`MAX_DOWN_SECONDS`; once that has passed it gets one request at a time until one succeeds. Such a failover is an extra attempt, at most one per other replica, so with R replicas a call
returns within `worst_case(R)` = (R + max_retries) * timeout + max_retries * max_wait seconds whatever the
servers do. At most `max_concurrency` requests per replica are in flight at once, over every caller of the
client (FIFO beyond that); what goes wrong comes back as `Outcome(value=None, error=...)`, a value the caller
counts, never an exception from inside the loop.

Requests run on one background asyncio event loop (a daemon thread), so callers stay synchronous, any number
of threads may share a client, and a group of requests (`call_many`) runs concurrently.
"""

from __future__ import annotations

import asyncio
import atexit
import email.utils
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

# vLLM and SGLang accept any key; real endpoints answer 401 to this one, which is a counted failure.
PLACEHOLDER_API_KEY = "EMPTY"
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
POOL_SIZE = 8  # requests in flight per httpx connection pool
DOWN_SECONDS = 5.0  # how long a replica that failed (refused, dropped, timed out) is skipped, at first
MAX_DOWN_SECONDS = 60.0  # the longest it is skipped after failures in a row


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
        """Seconds one call to one replica can take at most: every attempt to its deadline, every wait at its
        longest. With R replicas add (R - 1) * timeout for the failovers (`ServiceClient.worst_case`)."""
        return (1 + self.max_retries) * self.timeout + self.max_retries * self.max_wait

    def wait(self, retry: int) -> float:
        return min(self.retry_wait * 2**retry, self.max_wait)


@dataclass(frozen=True)
class Outcome:
    """What one call gave: `value` (parsed), or None and why; `attempts` requests over `seconds`, the last to
    `url`."""

    value: object
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    url: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


class Unusable(Exception):
    """Raised by a reply parser: the reply came but cannot be used; not retried (the same would come back)."""


class _Failed(Exception):
    def __init__(self, message: str, retry: bool, retry_after: float | None = None, down: bool = False):
        super().__init__(message)
        self.retry, self.retry_after, self.down = retry, retry_after, down


def split_urls(base_urls: str | list[str] | tuple[str, ...]) -> list[str]:
    """Replica base URLs from "http://a/v1,http://b/v1" or a list; trailing slashes dropped."""
    items = base_urls.split(",") if isinstance(base_urls, str) else list(base_urls)
    urls = [u.strip().rstrip("/") for u in items if u and u.strip()]
    if not urls:
        raise ValueError(f"no base URL in {base_urls!r}")
    return urls


class ServiceClient:
    """POST JSON to `path` under one of `base_urls`, within `limits`; the key comes from `$api_key_env`
    (a placeholder when unset) and is sent as a bearer token."""

    def __init__(
        self,
        base_urls,
        api_key_env: str = "OPENAI_API_KEY",
        limits: CallLimits = CallLimits(),
        max_concurrency: int = 16,
    ):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.urls = split_urls(base_urls)
        self.limits, self.max_concurrency = limits, max_concurrency
        self.api_key = os.environ.get(api_key_env) or PLACEHOLDER_API_KEY
        self._pools: list[httpx.AsyncClient] = []
        self._slots: asyncio.Queue | None = None
        self._in_flight = [0] * len(self.urls)
        self._down_until = [0.0] * len(self.urls)
        self._failures = [0] * len(self.urls)  # failures in a row, per replica
        self._turn = 0

    @property
    def max_in_flight(self) -> int:
        """Requests this client sends at once at most: `max_concurrency` per replica."""
        return self.max_concurrency * len(self.urls)

    @property
    def worst_case(self) -> float:
        """Seconds one call can take at most, failovers over every replica included."""
        return self.limits.worst_case + (len(self.urls) - 1) * self.limits.timeout

    def call(
        self, path: str, body: dict | None, parse: Callable[[bytes], object], method: str = "POST"
    ) -> Outcome:
        """One call; `parse(raw body) -> value` raises `Unusable` for a reply that cannot be used. A GET
        (`method="GET"`, e.g. `/models`) sends no body."""
        return self.call_many(path, [body], parse, method=method)[0]

    def call_many(
        self,
        path: str,
        bodies: list[dict | None],
        parse: Callable[[bytes], object],
        concurrency: int | None = None,
        method: str = "POST",
    ) -> list[Outcome]:
        """`call` for each of `bodies` (at most `concurrency` of them at a time, within the client's own
        bound); same order and length. Each call ends within `worst_case` once it has started."""
        if not bodies:
            return []
        coroutine = self._many(path, bodies, parse, concurrency or len(bodies), method)
        return asyncio.run_coroutine_threadsafe(coroutine, event_loop()).result()

    def close(self) -> None:
        pools, self._pools = self._pools, []
        for pool in pools:
            asyncio.run_coroutine_threadsafe(pool.aclose(), event_loop()).result(timeout=10)

    async def _many(self, path, bodies, parse, concurrency, method="POST") -> list[Outcome]:
        if self._slots is None:  # created in the loop's thread; the one loop serves every caller
            self._slots = asyncio.Queue()
            for slot in range(self.max_in_flight):
                self._slots.put_nowait(slot)
        local = asyncio.Semaphore(max(1, concurrency))

        async def one(body):
            async with local:
                slot = await self._slots.get()  # FIFO: at most max_in_flight calls hold a slot
                try:
                    return await self._call(path, body, parse, slot, method)
                finally:
                    self._slots.put_nowait(slot)

        return list(await asyncio.gather(*(one(b) for b in bodies)))

    def _pick(self, avoid: int | None) -> int:
        """The live replica with the fewest requests in flight, taking turns on ties; not `avoid` if another
        one is live. Runs in the event loop's thread only, so it needs no lock."""
        now, n = time.monotonic(), len(self.urls)
        # a replica that failed last gets one request at a time (a probe) once its down time has passed
        live = [
            i
            for i in range(n)
            if self._down_until[i] <= now and (self._failures[i] == 0 or self._in_flight[i] == 0)
        ]
        live = live or list(range(n))
        if avoid is not None and len(live) > 1:
            live = [i for i in live if i != avoid] or live
        best = min(live, key=lambda i: (self._in_flight[i], (i - self._turn) % n))
        self._turn = (best + 1) % n
        return best

    async def _call(
        self, path: str, body: dict | None, parse, slot: int = 0, method: str = "POST"
    ) -> Outcome:
        limits, start = self.limits, time.monotonic()
        retries, failovers, attempts, replica = 0, len(self.urls) - 1, 0, None
        while True:
            replica = self._pick(avoid=replica)
            url = self.urls[replica] + path
            attempts += 1
            self._in_flight[replica] += 1
            try:
                attempt = self._attempt(url, body, parse, slot, method)
                value = await asyncio.wait_for(attempt, limits.timeout)
                self._failures[replica] = 0
                return Outcome(value, None, attempts, time.monotonic() - start, url)
            except (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException):
                message = f"timeout: no complete reply within {limits.timeout:g}s"
                failure = _Failed(message, retry=True, down=True)
            except _Failed as e:
                failure = e
            except Unusable as e:
                failure = _Failed(str(e), retry=False)
            except httpx.HTTPError as e:  # connect refused, reset, broken chunking, ...
                reason = _short(str(e)) or "the connection closed without a reply"
                failure = _Failed(f"connection error: {type(e).__name__}: {reason}", retry=True, down=True)
            except Exception as e:  # a client bug must still be a failed call, not a crash
                failure = _Failed(f"{type(e).__name__}: {_short(str(e))}", retry=False)
            finally:
                self._in_flight[replica] -= 1
            if failure.down:
                self._mark_down(replica)
            if failure.retry_after is not None and failure.retry_after > limits.max_wait:
                message = f"{failure}; Retry-After {failure.retry_after:g}s > max_wait {limits.max_wait:g}s"
                failure = _Failed(message, retry=False)
            if not failure.retry:
                break
            if failure.down and failovers > 0:  # another replica may be up: try it now
                failovers -= 1
                continue
            if retries == limits.max_retries:
                break
            await asyncio.sleep(max(limits.wait(retries), failure.retry_after or 0.0))
            retries += 1
        seconds = time.monotonic() - start
        return Outcome(
            None, f"{failure} ({attempts} attempts, {seconds:.1f}s, {url})", attempts, seconds, url
        )

    def _mark_down(self, replica: int) -> None:
        """Skip `replica` for a back-off that doubles with each failure in a row; failures of requests that
        were in flight together count once."""
        now = time.monotonic()
        if self._down_until[replica] > now:
            return
        self._failures[replica] += 1
        seconds = min(DOWN_SECONDS * 2 ** (self._failures[replica] - 1), MAX_DOWN_SECONDS)
        self._down_until[replica] = now + seconds

    async def _attempt(self, url: str, body: dict | None, parse, slot: int, method: str = "POST"):
        # httpx's pool scans every waiting request and connection on each event, so its CPU cost per request
        # grows with the requests it holds (~10 ms each at 64 in flight here); POOL_SIZE slots share one pool.
        while len(self._pools) <= slot // POOL_SIZE:
            limits = httpx.Limits(
                max_connections=POOL_SIZE * len(self.urls), max_keepalive_connections=POOL_SIZE
            )
            # httpx's own per-operation timeouts stay as a backstop; the deadline is the wait_for above.
            self._pools.append(httpx.AsyncClient(timeout=self.limits.timeout, limits=limits))
        http = self._pools[slot // POOL_SIZE]
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with http.stream(method, url, json=body, headers=headers) as response:
            raw = await _read(response, self.limits.max_reply_bytes)
            if response.status_code >= 400:
                raise _Failed(
                    f"HTTP {response.status_code}: {_short(error_message(raw))}",
                    retry=response.status_code in RETRY_STATUSES,
                    retry_after=_retry_after(response.headers.get("retry-after")),
                )
        return parse(raw)


def parse_json(raw: bytes) -> dict:
    """A reply body as a JSON object, or `Unusable` naming what came instead."""
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise Unusable(
            f"malformed reply ({type(e).__name__}): {_short(raw.decode('utf-8', 'replace'))}"
        ) from None
    if not isinstance(data, dict):
        raise Unusable(f"malformed reply (not an object): {_short(raw.decode('utf-8', 'replace'))}")
    return data


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


def error_message(raw: bytes) -> str:
    """The `error.message` of an OpenAI-style error body (or FastAPI's `detail`), else the body itself."""
    try:
        data = json.loads(raw)
        error = data.get("error", data.get("detail"))
        if error is None:
            raise KeyError("error")
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except (ValueError, KeyError, TypeError, AttributeError):
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
_thread: threading.Thread | None = None
_loop_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """The process's background event loop for service calls, started on first use."""
    global _loop, _thread
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="ovip-services", daemon=True)
            _thread.start()
        return _loop


@atexit.register
def _stop_loop() -> None:
    """Stop the loop and join its thread at exit, while the interpreter is still whole: a daemon thread that is
    still running when the interpreter finalizes is stopped in the middle of whatever it was doing, which can
    abort the process ("terminate called without an active exception") after a run that succeeded."""
    loop, thread = _loop, _thread
    if loop is None or thread is None or not thread.is_alive():
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def _forget_loop() -> None:  # a forked child has the loop object but not its thread
    global _loop, _thread
    _loop, _thread = None, None


os.register_at_fork(after_in_child=_forget_loop)
