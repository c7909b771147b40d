"""Rollout batches in flight: sampled, sent to the services, not yet in the buffer (`train.pipeline`).

- sequential: prompt after prompt and pair after pair, one batch after the other (Algorithm 1 read
  literally; only the k responses of one prompt go to the judge together);
- concurrent (default): all requests of a batch in flight; the same experiences and weights as sequential,
  with deterministic services, in the time of the slowest request of each stage instead of their sum;
- overlapped: while batch t is judged, described and drawn in a worker thread, the main thread samples
  batch t+1. Batch t+1 is sampled BEFORE the updates that batch t's experiences trigger, so it comes from
  weights at most one batch's updates old (`rollout/staleness`, in steps; an experience's `step` is the step
  whose weights sampled it). The paper's own system is asynchronous too (four samplers share a buffer,
  Appendix D).

Batches leave in the order they were sampled, so a run is reproducible in every mode. The batches in flight
are part of a checkpoint (their samples); restored ones are sent to the services again, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ovip.train.stages import Feedback, SampledBatch
from ovip.train.timers import StageTimers


class Pipeline:
    def __init__(self, mode: str, feedback: Callable[[SampledBatch], Feedback], timers: StageTimers):
        self.depth = 2 if mode == "overlapped" else 1
        self.feedback, self.timers = feedback, timers
        self.inflight: list[SampledBatch] = []
        self.worker: ThreadPoolExecutor | None = None
        self.sent: dict[int, Future] = {}

    def fill(self, sample: Callable[[int], SampledBatch], cursor: int, total: int) -> None:
        """Sample batches until `depth` are in flight (the data allowing), each sent to the services at once
        when overlapped; restored batches are sent first."""
        if self.depth > 1 and self.worker is None:
            self.worker = ThreadPoolExecutor(1, thread_name_prefix="ovip-pipeline")
        for batch in self.inflight:
            self._send(batch)
        while len(self.inflight) < self.depth:
            start = self.inflight[-1].end if self.inflight else cursor
            if start >= total:
                break
            self.inflight.append(sample(start))
            self._send(self.inflight[-1])

    def oldest(self) -> tuple[SampledBatch, Feedback] | None:
        """The oldest batch in flight and its feedback (waited for, `time/service_wait`); it stays in flight
        until `done()`, so a checkpoint taken meanwhile sends it again on resume. None when nothing is left."""
        if not self.inflight:
            return None
        batch = self.inflight[0]
        if self.worker is None:
            return batch, self.feedback(batch)
        with self.timers("service_wait"):
            return batch, self.sent.pop(batch.start).result()

    def done(self) -> None:
        self.inflight.pop(0)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.shutdown(wait=False, cancel_futures=True)
        self.worker, self.sent = None, {}

    def _send(self, batch: SampledBatch) -> None:
        if self.worker is not None and batch.start not in self.sent:
            self.sent[batch.start] = self.worker.submit(self.feedback, batch)
