"""Rollout batches in flight: sampled, sent to the services, not yet in the buffer (`train.pipeline`).

- sequential: prompt after prompt and pair after pair, one batch after the other (Algorithm 1 read
  literally; only the k responses of one prompt go to the judge together);
- concurrent (default): all requests of a batch in flight; the same experiences and weights as sequential,
  with deterministic services, in the time of the slowest request of each stage instead of their sum;
- overlapped: while batch t is judged, described and drawn in a worker thread, the next batch is sampled.
  Batch t+1 is sampled BEFORE the updates that batch t's experiences trigger, so it comes from weights at
  most one batch's updates old (`rollout/staleness`, in steps; an experience's `step` is the step whose
  weights sampled it). The paper's own system is asynchronous too (four samplers share a buffer, Appendix D).
  `train.max_staleness` S bounds that lag in optimizer steps instead: S + 1 batches are sampled ahead, their
  services run at once (each batch's judge requests wait until the batch before has its judgments, so the
  judge's cache sees the same verdicts whatever the timing), and an update that would leave a batch in flight
  more than S steps behind waits until that batch is in the buffer (`allows_update`).

A batch is a `Sampling` (`ovip.train.rollout`): the loop's thread samples it (`engine: local`) or a policy
server does while the loop goes on (`engine: server`); either way its services start once it is sampled.
Batches leave in the order they were sampled, so a run is reproducible in every mode. The batches in flight
are part of a checkpoint (their samples; a batch with a prompt whose sampling failed is saved as not sampled,
with every batch after it, so that a resume samples it again); restored ones are sent to the services again,
in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ovip.config import registry
from ovip.config.sections import Pipeline as PipelineMode
from ovip.train.rollout import Sampling
from ovip.train.stages import Feedback, SampledBatch
from ovip.train.timers import StageTimers


@dataclass(frozen=True)
class Mode:
    depth: int  # batches in flight
    streamed: bool  # every request of a batch at once (`ovip.train.stages.run_services`)


MODES = registry(
    PipelineMode,
    {
        "sequential": Mode(depth=1, streamed=False),
        "concurrent": Mode(depth=1, streamed=True),
        "overlapped": Mode(depth=2, streamed=True),
    },
)


class Pipeline:
    def __init__(self, train, feedback: Callable[..., Feedback], timers: StageTimers):
        mode = MODES[train.pipeline]
        self.max_staleness, self.streamed = train.max_staleness, mode.streamed
        self.depth = mode.depth if self.max_staleness is None else self.max_staleness + 1
        self.feedback, self.timers = feedback, timers
        self.inflight: list[Sampling] = []
        self.worker: ThreadPoolExecutor | None = None
        self.sent: dict[int, Future] = {}
        self.judged = threading.Event()  # the newest batch sent has its judgments
        self.judged.set()

    def fill(self, sample: Callable[[int], Sampling], cursor: int, total: int) -> None:
        """Sample batches until `depth` are in flight (the data allowing), each sent to the services as soon
        as it is sampled when overlapped; restored batches are sent first."""
        if self.depth > 1 and self.worker is None:
            self.worker = ThreadPoolExecutor(self.depth - 1, thread_name_prefix="ovip-pipeline")
        for flight in self.inflight:
            self._send(flight)
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
        flight = self.inflight[0]
        with self.timers("service_wait"):  # a policy server's samples, then the services' replies
            batch = flight.result()
            feedback = self.feedback(batch) if self.worker is None else self.sent.pop(flight.start).result()
        if batch.seconds:
            feedback.seconds["sampling"] = batch.seconds
        return batch, feedback

    def allows_update(self, step: int) -> bool:
        """Whether optimizer step `step + 1` leaves every batch in flight within `train.max_staleness`."""
        return self.max_staleness is None or all(
            step + 1 - f.step <= self.max_staleness for f in self.inflight
        )

    def restore(self, saved: list[dict], rebuild) -> None:
        """The batches in flight of a checkpoint (`state`), rebuilt from their samples."""
        self.inflight = [
            Sampling.done(rebuild(b["start"], b["step"], b["groups"], b.get("size"))) for b in saved
        ]

    def done(self) -> None:
        self.inflight.pop(0)

    def state(self, ranks) -> list[dict]:
        """The batches in flight for a checkpoint (waiting for those still being sampled), up to the first
        one with a prompt whose sampling failed on any rank (a collective with several ranks)."""
        batches = [flight.result() for flight in self.inflight]
        failed = [any(r.error is not None for r in b.rollouts) for b in batches]
        if ranks.world > 1:
            failed = [any(flags) for flags in zip(*ranks.gather(failed), strict=True)]
        keep = failed.index(True) if True in failed else len(batches)
        return [b.state() for b in batches[:keep]]

    def close(self) -> None:
        if self.worker is not None:
            self.worker.shutdown(wait=False, cancel_futures=True)
        self.worker, self.sent = None, {}

    def _send(self, flight: Sampling) -> None:
        if self.worker is None or flight.start in self.sent:
            return
        turn = None
        if self.depth > 2:  # several batches with the services at once: their judging in order
            before, self.judged = self.judged, threading.Event()
            turn = (before, self.judged)
        self.sent[flight.start] = self.worker.submit(self._serve, flight, turn)

    def _serve(self, flight: Sampling, turn) -> Feedback:
        try:
            batch = flight.result()
        except BaseException:
            if turn is not None:
                turn[1].set()
            raise
        return self.feedback(batch, turn) if turn is not None else self.feedback(batch)
