"""The service stages of one rollout batch (Algorithm 1, Table 6): scoring, pairs, description, negative image.

    judge_one        r^i = G_r(Q, A^i, A*) for the distinct responses of one prompt                 Eq. 1
    pairs_of         (A+, A-) by Eq. 2, or (A*, worst) as Algorithm 1's fallback                    Eq. 2
    describe_one     T- = G_diff(Q, A+, A-) for one pair
    synthesize_one   I- = Diff(T-) for one pair whose description came back                         Eq. 3

`run_services` applies them to a whole batch. Streamed (`train.pipeline` concurrent or overlapped), every
request goes out as soon as what it needs is back, at most `width` per service at a time (`ServicePool`): the
judge requests of every prompt at once, a prompt's descriptions as soon as its own judgments are in, a
pair's image as soon as its description is. One by one (sequential), prompt after prompt, pair after pair.
Either way results are assembled in prompt and pair order whatever order they complete in, so with
deterministic services every pipeline mode gives the same experiences. The stages touch no model and no
counter: `run_services` can run in a worker thread while the policy samples the next batch (overlapped). A
service that raises costs one item, never the run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from ovip.pairs import PairRule, select_pairs, select_pairs_released_code
from ovip.records import Describer, Description, Example, ImageSynthesizer, Judge, Judgment, NegativeImage

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    """k responses sampled for one prompt (Eq. 1). `responses` are the distinct ones in order of first
    sampling: each is judged once, and the pairs are drawn from them, as the authors' code does (a Python
    set), so a response the policy repeats is not paired, and weighed, several times. `samples` are all k, in
    sampling order, duplicates included (GRPO's group). `error`: why a prompt has no samples (its request to a
    policy server failed: a counted failure of the rollout service), None otherwise."""

    example: Example
    image: Image.Image
    sampled: int
    responses: list[str]
    samples: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class SampledBatch:
    """A rollout batch: prompts `start`, `start + 1`, ..., `start + size - 1` of the data order, sampled by the
    weights after optimizer step `step`; with several ranks `rollouts` are this rank's share of them
    (`ovip.train.distributed`). `groups` are the k sampled texts per prompt, all a checkpoint needs to rebuild
    the batch when it is still in flight. `stale` says why the run must stop: a policy server answered for
    another adapter than the one asked for. `seconds`: the time a policy server took to sample it."""

    start: int
    step: int
    groups: list[list[str]]
    rollouts: list[Rollout]
    size: int | None = None  # prompts of the whole batch over all ranks; None: len(rollouts)
    stale: str | None = None
    seconds: float = 0.0

    @property
    def end(self) -> int:
        return self.start + (len(self.rollouts) if self.size is None else self.size)

    def state(self) -> dict:
        return {"start": self.start, "step": self.step, "groups": self.groups, "size": self.end - self.start}


@dataclass
class PairCandidate:
    """A selected pair of prompt `prompt` on its way to an experience; `chosen` is A* for a fallback pair.
    `description` and `negative` are filled by the describer and the image service when the method draws."""

    prompt: int
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    fallback: bool
    negative_seed: int
    description: Description | None = None
    negative: NegativeImage | None = None

    @property
    def drawn(self) -> bool:
        """Its description and negative image both came back."""
        return bool(self.description and self.description.ok and self.negative and self.negative.ok)


@dataclass
class SampleCandidate:
    """One judged sample of prompt `prompt` with its weight in the update (GRPO: the group advantage)."""

    prompt: int
    response: str
    score: float
    advantage: float


@dataclass
class AnswerCandidate:
    """A target answer for prompt `prompt` (SFT: the reference answer A*)."""

    prompt: int
    response: str


Candidate = PairCandidate | SampleCandidate | AnswerCandidate


@dataclass
class Feedback:
    """What the services made of a batch: judgments per prompt (same order as `Rollout.responses`), the
    candidates (pairs, samples or answers, as the objective selects them) in prompt order, the pairs with their
    description and negative image, and each stage's wall time."""

    judgments: list[list[Judgment]]
    pairs_per_prompt: list[int]
    candidates: list[Candidate]
    seconds: dict[str, float] = field(default_factory=dict)


def derive_seed(base: int, *parts: str) -> int:
    """A seed of its own for each negative image, from the run's `negatives.seed` and what the image is for
    (the example and the rejected answer): stable across runs and resumes, different between experiences, so
    that no two negatives share a background, a crop box or a random pick."""
    digest = hashlib.sha256("\x1f".join([str(base), *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def guarded(call, *args, **kwargs):
    """Run one external-service call; return (result, None), or (None, error text) if it raised.

    The judge, describer and synthesizer clients already return failures as values; this is the loop's own
    guarantee that a bug or an unexpected error in one of them costs one item (counted), never the run.
    """
    try:
        return call(*args, **kwargs), None
    except Exception as e:  # any failure of a service is a counted value
        log.warning("%s failed: %s: %s", getattr(call, "__qualname__", call), type(e).__name__, e)
        return None, f"{type(e).__name__}: {e}"


class ServicePool:
    """The three services and how many calls each may have in flight (`widths`; 1 = one at a time)."""

    def __init__(
        self,
        judge: Judge,
        describer: Describer,
        synthesizer: ImageSynthesizer,
        widths: dict[str, int] | None = None,
    ):
        self.judge, self.describer, self.synthesizer = judge, describer, synthesizer
        # Threads per service: a remote one takes its clients' bound, an in-process one runs one call at a time.
        services = {"judge": judge, "describer": describer, "negatives": synthesizer}
        self.widths = widths or {n: max(1, int(getattr(s, "max_in_flight", 1))) for n, s in services.items()}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self.closed = False  # set when the run stops: a batch still being served stops at its next request

    def submit(self, service: str, fn, *args) -> Future:
        """`fn(*args)` on the service's threads, at most `widths[service]` at once."""
        if self.closed:
            raise RuntimeError("the run has stopped")
        if service not in self._pools:
            self._pools[service] = ThreadPoolExecutor(
                self.widths.get(service, 1), thread_name_prefix=f"ovip-{service}"
            )
        return self._pools[service].submit(fn, *args)

    def close(self) -> None:
        self.closed = True
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()


def judge_one(services: ServicePool, rollout: Rollout) -> list[Judgment]:
    """r^i = G_r(Q, A^i, A*) for the distinct responses of one prompt (Eq. 1); none without responses."""
    if not rollout.responses:  # its sampling failed: nothing to judge
        return []
    judgments, error = guarded(
        services.judge.judge, rollout.example.query, rollout.responses, rollout.example.reference
    )
    if not error and len(judgments) != len(rollout.responses):
        error = f"the judge returned {len(judgments)} judgments for {len(rollout.responses)} responses"
    return [Judgment(x, None, error=error) for x in rollout.responses] if error else judgments


def pairs_of(
    index: int, rollout: Rollout, judgments: list[Judgment], rule: PairRule, variant: str, negatives_seed: int
) -> list[PairCandidate]:
    """Eq. 2 on one prompt's scores (failed judgments take no part), in the order the rule picks them."""
    scores = [j.score for j in judgments]
    if variant == "paper":
        pairs = select_pairs(scores, rule)
    else:
        pairs = select_pairs_released_code(scores, rule.reference_fallback)
    out = []
    for pair in pairs:
        fallback = pair.chosen is None
        rejected = rollout.responses[pair.rejected]
        out.append(
            PairCandidate(
                prompt=index,
                chosen=rollout.example.reference if fallback else rollout.responses[pair.chosen],
                rejected=rejected,
                chosen_score=10.0 if fallback else float(scores[pair.chosen]),
                rejected_score=float(scores[pair.rejected]),
                fallback=fallback,
                negative_seed=derive_seed(negatives_seed, rollout.example.id, rejected),
            )
        )
    return out


def describe_one(services: ServicePool, rollout: Rollout, candidate: PairCandidate) -> Description:
    """T- = G_diff(Q, A+, A-) for one pair."""
    description, error = guarded(
        services.describer.describe, rollout.example.query, candidate.chosen, candidate.rejected
    )
    return Description(None, error=error) if error else description


def synthesize_one(services: ServicePool, rollout: Rollout, candidate: PairCandidate) -> NegativeImage:
    """I- = Diff(T-) for one pair whose description came back (Eq. 3)."""
    negative, error = guarded(
        services.synthesizer.synthesize,
        candidate.description.text,
        rollout.image,
        seed=candidate.negative_seed,
    )
    return NegativeImage(None, error=error) if error else negative


class Selector(Protocol):
    """What a method makes of one prompt's judged samples (`ovip.train.objective.Objective`)."""

    judged: bool  # the samples go to the judge (False: nothing is sampled, `select` gets no judgments)
    negatives: bool  # each selected pair gets a description and a negative image

    def select(self, index: int, rollout: Rollout, judgments: list[Judgment]) -> list[Candidate]: ...


def run_services(
    services: ServicePool, batch: SampledBatch, selector: Selector, streamed: bool = True, turn=None
) -> Feedback:
    """Judge, select, describe and draw one batch; `streamed=False` goes prompt after prompt, pair after pair.
    A selector that is not `judged` (SFT) gets no judgments and calls no service; one without `negatives`
    stops after the selection. `turn` (two `threading.Event`s), when batches are served at once: the batch's
    first judge request waits for the first event, and the second is set when its last judgment is in, so
    that each batch meets the judge's cache of the batches before it, whatever their timing."""
    try:
        if not selector.judged:
            judgments = [[] for _ in batch.rollouts]
            candidates = [c for i, r in enumerate(batch.rollouts) for c in selector.select(i, r, [])]
            seconds = {}
        elif streamed:
            judgments, candidates, seconds = _streamed(
                services, batch.rollouts, selector.select, selector.negatives, turn
            )
        else:
            judgments, candidates, seconds = _one_by_one(
                services, batch.rollouts, selector.select, selector.negatives
            )
    finally:
        if turn is not None:
            turn[1].set()
    counts = [sum(c.prompt == i for c in candidates) for i in range(len(batch.rollouts))]
    return Feedback(judgments, counts, candidates, seconds)


def _one_by_one(services, rollouts, select, negatives):
    seconds = {"scoring": 0.0, "description": 0.0, "negative_image": 0.0}
    judgments, candidates = [], []

    def timed(stage, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            seconds[stage] += time.perf_counter() - start

    for index, rollout in enumerate(rollouts):
        judgments.append(timed("scoring", judge_one, services, rollout))
        for candidate in select(index, rollout, judgments[-1]):
            if not negatives:
                candidates.append(candidate)
                continue
            candidate.description = timed("description", describe_one, services, rollout, candidate)
            if candidate.description.ok:
                candidate.negative = timed("negative_image", synthesize_one, services, rollout, candidate)
            candidates.append(candidate)
    return judgments, candidates, seconds


def _streamed(services, rollouts, select, negatives, turn=None):
    """Every request as soon as what it needs is back: a prompt's pairs go to the describer when its own
    judgments are in, a pair's description to the image service when it is in. Results land in their slots,
    so completion order does not matter. A stage's time is the span from its first request to its last reply
    (the spans overlap)."""
    judgments: list = [None] * len(rollouts)
    per_prompt: list = [[] for _ in rollouts]
    pending: dict[Future, tuple[str, object]] = {}
    first, last = {}, {}

    def send(stage, fn, *args, slot):
        first.setdefault(stage, time.perf_counter())
        pending[services.submit(SERVICE[stage], fn, services, *args)] = (stage, slot)

    if turn is not None:
        turn[0].wait()  # the batch before has its judgments
    for index, rollout in enumerate(rollouts):
        send("scoring", judge_one, rollout, slot=index)
    judging = len(rollouts)
    if turn is not None and not judging:
        turn[1].set()
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            stage, slot = pending.pop(future)
            last[stage] = time.perf_counter()
            if stage == "scoring":
                judging -= 1
                if turn is not None and not judging:
                    turn[1].set()
                judgments[slot] = future.result()
                per_prompt[slot] = select(slot, rollouts[slot], judgments[slot])
                for candidate in per_prompt[slot] if negatives else ():
                    send("description", describe_one, rollouts[slot], candidate, slot=candidate)
            elif stage == "description":
                slot.description = future.result()
                if slot.description.ok:
                    send("negative_image", synthesize_one, rollouts[slot.prompt], slot, slot=slot)
            else:
                slot.negative = future.result()
    seconds = {stage: last[stage] - first[stage] for stage in first}
    return judgments, [c for group in per_prompt for c in group], seconds


SERVICE = {"scoring": "judge", "description": "describer", "negative_image": "negatives"}
