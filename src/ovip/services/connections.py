"""Connection limits of the `ovip serve` servers: a deadline for each request head, a cap on open connections,
and a log that says what was refused without writing a line per event.

uvicorn bounds neither the time a client may take to send its request head (a connection that sends half a
header and waits is held for ever) nor the connections it accepts before its `limit_concurrency` answers 503
(it counts a connection only once its head is complete), so a client that opens many connections and sends
nothing holds a file descriptor each until the process has none left. Here each connection wraps uvicorn's
h11 protocol (composition: every event is passed on unchanged) and

- is closed when its request head has not arrived `header_timeout` seconds after its first byte (or after
  it opened); while a request is being served (the `Guard` marks it, `started` / `finished`) it has no such
  deadline, the `Guard`'s body and request deadlines apply;
- counts towards `max_connections`: a new connection beyond it closes the connection that has waited
  longest for a request head, so connections that send nothing cannot lock out a client that sends its
  request at once; when every connection is serving a request, the new one is answered 503.

What is refused goes to `QuietLog`: the first event of a kind is printed at once, the others of the next
`interval` seconds are counted and printed as one line. uvicorn's and asyncio's own warnings (an invalid
request, "Exceeded concurrency limit", "socket.accept() out of system resource") go through it too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
import time
from collections import Counter

LOG_INTERVAL = 10.0  # seconds between two lines of one kind
FD_RESERVE = 64  # file descriptors kept for everything but client connections (logs, model files, threads)
# asyncio accepts up to `backlog` connections in one go, and a few such batches can be accepted before the
# first of them reaches `Connections.admit`: the file descriptors they hold are kept free too. (Run out, and
# asyncio's accept loop logs the error once per pending connection, every second.)
ACCEPT_BATCH = 128
BATCHES_IN_FLIGHT = 4


class QuietLog:
    """At most one line per kind of event per `interval` seconds on `stream` (see the module docstring)."""

    def __init__(self, interval: float = LOG_INTERVAL, stream=None, prefix: str = "ovip serve"):
        self.interval, self.stream, self.prefix = interval, stream, prefix
        self._lock = threading.Lock()
        self._quiet_until: dict[str, float] = {}
        self._pending: Counter[str] = Counter()

    def note(self, kind: str, message: str) -> None:
        """One event of `kind`; `message` says what happened (printed for the first one of an interval)."""
        if self._first(kind):
            self._print(f"{kind}: {message}")

    def filter(self, record: logging.LogRecord) -> bool:
        """A `logging` filter: a record's first line is its kind; the first one of an interval is logged as it
        is (with its traceback), the others are counted here."""
        return self._first(f"{record.name}: {str(record.msg).split(chr(10), 1)[0][:80]}")

    def _first(self, kind: str) -> bool:
        """True for the first event of `kind` in an interval; the others are counted for `_flush`."""
        with self._lock:
            now = time.monotonic()
            if now >= self._quiet_until.get(kind, 0.0):
                self._quiet_until[kind] = now + self.interval
                return True
            self._pending[kind] += 1
            if self._pending[kind] == 1:
                timer = threading.Timer(self._quiet_until[kind] - now, self._flush, args=(kind,))
                timer.daemon = True
                timer.start()
            return False

    def _flush(self, kind: str) -> None:
        with self._lock:
            count = self._pending.pop(kind, 0)
            if count:
                self._quiet_until[kind] = time.monotonic() + self.interval
                self._print(f"{kind}: {count} more in the last {self.interval:g}s")

    def _print(self, line: str) -> None:
        print(f"{self.prefix}: {line}", file=self.stream or sys.stderr, flush=True)


class Connections:
    """The open connections of one server, their request-head deadlines and their cap (module docstring).

    `protocol` is the class to give uvicorn as `http=`; the `Guard` calls `started(client)` when a request
    head has arrived and `finished(client)` when its reply is sent, `client` being the ASGI scope's
    `client` (host, port), the key of a connection here.
    """

    def __init__(
        self, max_connections: int = 1024, header_timeout: float = 10.0, log: QuietLog | None = None
    ):
        if max_connections < 1 or not header_timeout > 0:
            raise ValueError(
                f"max_connections must be >= 1 and header_timeout > 0, got {max_connections}, {header_timeout}"
            )
        self.max_connections, self.header_timeout = max_connections, header_timeout
        self.log = log or QuietLog()
        # by client address; the first idle one is the one that has waited longest for a request head
        self.open: dict[tuple, _Connection] = {}
        self.protocol = functools.partial(_Connection, self)

    def started(self, client) -> None:
        connection = self.open.get(_key(client))
        if connection is not None:
            connection.busy = True
            connection.cancel_deadline()

    def finished(self, client) -> None:
        key = _key(client)
        connection = self.open.pop(key, None)
        if connection is not None:
            connection.busy = False
            self.open[key] = connection  # now the newest to wait for a request head

    def admit(self, connection: _Connection) -> bool:
        """Make room for `connection` (closing the one longest without a request head); False if none can."""
        if len(self.open) >= self.max_connections:
            idle = next((c for c in self.open.values() if not c.busy), None)
            if idle is None:
                self.log.note(
                    "connection limit",
                    f"{self.max_connections} connections are all serving requests: a new one was answered 503",
                )
                return False
            self.log.note(
                "connection limit",
                f"{self.max_connections} connections open: closed the one that waited longest for a request head",
            )
            idle.close()
        self.open[connection.key] = connection
        return True

    def forget(self, connection: _Connection) -> None:
        if self.open.get(connection.key) is connection:
            del self.open[connection.key]


def _key(client) -> tuple:
    return (str(client[0]), int(client[1])) if client else ()


_BUSY_REPLY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Connection:
    """An asyncio protocol that passes every event to uvicorn's h11 protocol, with a request-head deadline."""

    def __init__(self, registry: Connections, *args, **kwargs):
        from uvicorn.protocols.http.h11_impl import H11Protocol

        self.registry, self.inner = registry, H11Protocol(*args, **kwargs)
        self.transport, self.key, self.busy, self.admitted, self._deadline = None, (), False, False, None

    def connection_made(self, transport) -> None:
        from uvicorn.protocols.utils import get_remote_addr

        self.transport = transport
        self.key = _key(get_remote_addr(transport)) or (id(self),)  # the scope's "client" the Guard sees
        if not self.registry.admit(self):
            transport.write(_BUSY_REPLY)
            transport.close()
            return
        self.admitted = True
        self.inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        self.inner.data_received(data)
        if not self.busy:  # bytes of a request head: it must be complete in time
            self._arm()

    def eof_received(self):
        return self.inner.eof_received() if self.admitted else None

    def connection_lost(self, exc) -> None:
        self.cancel_deadline()
        if self.admitted:
            self.registry.forget(self)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.admitted:
            self.inner.resume_writing()

    def close(self) -> None:
        self.registry.forget(self)
        self.cancel_deadline()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _arm(self) -> None:
        if self._deadline is None and self.transport is not None and not self.transport.is_closing():
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self.registry.header_timeout, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if not self.busy:
            self.registry.log.note(
                "header timeout",
                f"closed a connection without a complete request head after {self.registry.header_timeout:g}s",
            )
            self.close()


def connection_cap(wanted: int) -> int:
    """`wanted`, or fewer when the process's file-descriptor limit (`ulimit -n`) cannot hold that many
    connections; the soft limit is raised towards the hard one first."""
    try:
        import resource
    except ImportError:  # not on Unix: no limit to read
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = FD_RESERVE + BATCHES_IN_FLIGHT * ACCEPT_BATCH
    need = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve))
