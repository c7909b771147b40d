"""Concurrent requests of one kind gathered into one model call (`ovip serve images`, `ovip serve policy`).

One worker per server, started on the server's event loop at the first request, waits `batch_wait` seconds
after a wake-up for the rest of a burst, then takes the oldest job and the later ones with the same `key`
(the same size and settings: what one call can serve together) while their sizes fit in `max_batch`, and runs
`backend.generate(jobs)` in a thread; each job's future gets its result. A job whose request timed out while
queued is dropped; a failing call gives every job of it `failed(error)`, and the worker lives on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Batcher:
    def __init__(
        self,
        backend,
        max_batch: int,
        batch_wait: float = 0.01,
        max_queue: int = 256,
        size: Callable[[object], int] = lambda job: 1,
        failed: Callable[[Exception], object] = lambda e: f"backend failed: {type(e).__name__}: {e}",
    ):
        self.backend, self.max_batch, self.batch_wait, self.max_queue = (
            backend,
            max_batch,
            batch_wait,
            max_queue,
        )
        self.size, self.failed = size, failed
        self.calls = 0  # backend calls so far; tests and the benchmarks read it
        self._queue: list[tuple[object, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    def busy(self) -> bool:
        """The queue is full: the server answers 503 rather than let waiting requests pile up."""
        return len(self._queue) >= self.max_queue

    async def submit(self, job):
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        self._wake.set()
        return await future

    def _take(self) -> list[tuple[object, asyncio.Future]]:
        """The oldest job and the later ones of its key, while their sizes fit in `max_batch`."""
        key, total, taken = self._queue[0][0].key, 0, set()
        for i, (job, _) in enumerate(self._queue):
            if job.key == key and (not taken or total + self.size(job) <= self.max_batch):
                taken.add(i)
                total += self.size(job)
        batch = [item for i, item in enumerate(self._queue) if i in taken]
        self._queue = [item for i, item in enumerate(self._queue) if i not in taken]
        return batch

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.batch_wait)  # let the requests of one burst arrive
            while self._queue:
                self._queue = [(j, f) for j, f in self._queue if not f.done()]  # timed out while queued
                if not self._queue:
                    break
                batch = self._take()
                self.calls += 1
                try:
                    results = await asyncio.to_thread(self.backend.generate, [j for j, _ in batch])
                except Exception as e:  # the worker must outlive any failure, or every later request waits
                    results = [self.failed(e)] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
