"""The service stages of one rollout batch (Algorithm 1, Table 6): scoring, pairs, description, negative image.

    judge_stage      r^i = G_r(Q, A^i, A*) for every distinct response of every prompt            Eq. 1
    pair_stage       (A+, A-) by Eq. 2, or (A*, worst) as Algorithm 1's fallback                    Eq. 2
    describe_stage   T- = G_diff(Q, A+, A-) for every pair
    synthesize_stage I- = Diff(T-) for every pair whose description came back                       Eq. 3

Each stage takes the whole batch, sends every request of it at once, at most `width` per service at a time
(`Services.map`; width 1 is the sequential loop), and returns results in prompt and pair order whatever
order they complete in, so with deterministic services every pipeline mode gives the same experiences. The
stages touch no model and no counter: `run_services` can run them in a worker thread while the policy
samples the next batch (`train.pipeline: overlapped`). A service that raises costs one item, never the run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from ovip.pairs import PairRule, select_pairs, select_pairs_released_code
from ovip.records import Describer, Description, Example, ImageSynthesizer, Judge, Judgment, NegativeImage

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    """k responses sampled for one prompt (Eq. 1). `responses` are the distinct ones in order of first
    sampling: exact duplicates are dropped before scoring, as the authors' code does (a Python set), so a
    response the policy repeats is not paired, and weighed, several times."""

    example: Example
    image: Image.Image
    sampled: int
    responses: list[str]


@dataclass
class SampledBatch:
    """A rollout batch: prompts `start`, `start + 1`, ... of the data order, sampled by the weights after
    optimizer step `step`. `groups` are the k sampled texts per prompt, all a checkpoint needs to rebuild the
    batch when it is still in flight."""

    start: int
    step: int
    groups: list[list[str]]
    rollouts: list[Rollout]

    @property
    def end(self) -> int:
        return self.start + len(self.rollouts)

    def state(self) -> dict:
        return {"start": self.start, "step": self.step, "groups": self.groups}


@dataclass
class Candidate:
    """A selected pair of prompt `prompt` on its way to an experience; `chosen` is A* for a fallback pair."""

    prompt: int
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    fallback: bool
    negative_seed: int
    description: Description | None = None
    negative: NegativeImage | None = None


@dataclass
class Feedback:
    """What the services made of a batch: judgments per prompt (same order as `Rollout.responses`), the
    pairs in prompt then pair order with their description and negative image, and each stage's wall time."""

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


class Services:
    """The three services and how many calls each may have in flight (`widths`; 1 = one at a time)."""

    def __init__(self, judge: Judge, describer: Describer, synthesizer: ImageSynthesizer, widths: dict[str, int]):
        self.judge, self.describer, self.synthesizer, self.widths = judge, describer, synthesizer, widths
        self._pools: dict[str, ThreadPoolExecutor] = {}

    def map(self, service: str, fn, items: list) -> list:
        """`[fn(x) for x in items]`, up to `widths[service]` at once; results in the order of `items`."""
        width = min(self.widths.get(service, 1), len(items))
        if width <= 1:
            return [fn(x) for x in items]
        if service not in self._pools:
            self._pools[service] = ThreadPoolExecutor(self.widths[service], thread_name_prefix=f"ovip-{service}")
        return list(self._pools[service].map(fn, items))

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()


def judge_stage(services: Services, rollouts: list[Rollout]) -> list[list[Judgment]]:
    def one(r: Rollout) -> list[Judgment]:
        judgments, error = guarded(services.judge.judge, r.example.query, r.responses, r.example.reference)
        if not error and len(judgments) != len(r.responses):
            error = f"the judge returned {len(judgments)} judgments for {len(r.responses)} responses"
        return [Judgment(x, None, error=error) for x in r.responses] if error else judgments

    return services.map("judge", one, rollouts)


def pair_stage(rollouts: list[Rollout], judgments: list[list[Judgment]], rule: PairRule, variant: str,
               negatives_seed: int) -> tuple[list[Candidate], list[int]]:
    """Eq. 2 on each prompt's scores (failed judgments take no part); (candidates, pairs per prompt)."""
    candidates, counts = [], []
    for index, (rollout, group) in enumerate(zip(rollouts, judgments, strict=True)):
        scores = [j.score for j in group]
        if variant == "paper":
            pairs = select_pairs(scores, rule)
        else:
            pairs = select_pairs_released_code(scores, rule.reference_fallback)
        counts.append(len(pairs))
        for pair in pairs:
            fallback = pair.chosen is None
            rejected = rollout.responses[pair.rejected]
            candidates.append(Candidate(
                prompt=index, chosen=rollout.example.reference if fallback else rollout.responses[pair.chosen],
                rejected=rejected, chosen_score=10.0 if fallback else float(scores[pair.chosen]),
                rejected_score=float(scores[pair.rejected]), fallback=fallback,
                negative_seed=derive_seed(negatives_seed, rollout.example.id, rejected)))
    return candidates, counts


def describe_stage(services: Services, rollouts: list[Rollout], candidates: list[Candidate]) -> None:
    def one(c: Candidate) -> Description:
        description, error = guarded(services.describer.describe, rollouts[c.prompt].example.query, c.chosen,
                                     c.rejected)
        return Description(None, error=error) if error else description

    for c, description in zip(candidates, services.map("describer", one, candidates), strict=True):
        c.description = description


def synthesize_stage(services: Services, rollouts: list[Rollout], candidates: list[Candidate]) -> None:
    todo = [c for c in candidates if c.description is not None and c.description.ok]

    def one(c: Candidate) -> NegativeImage:
        negative, error = guarded(services.synthesizer.synthesize, c.description.text, rollouts[c.prompt].image,
                                  seed=c.negative_seed)
        return NegativeImage(None, error=error) if error else negative

    for c, negative in zip(todo, services.map("negatives", one, todo), strict=True):
        c.negative = negative


def run_services(services: Services, batch: SampledBatch, rule: PairRule, variant: str,
                 negatives_seed: int) -> Feedback:
    """Judge, pair, describe and draw one batch, each stage under its paper name (Appendix D)."""
    seconds = {}
    start = time.perf_counter()
    judgments = judge_stage(services, batch.rollouts)
    seconds["scoring"] = time.perf_counter() - start
    candidates, counts = pair_stage(batch.rollouts, judgments, rule, variant, negatives_seed)
    start = time.perf_counter()
    describe_stage(services, batch.rollouts, candidates)
    seconds["description"] = time.perf_counter() - start
    start = time.perf_counter()
    synthesize_stage(services, batch.rollouts, candidates)
    seconds["negative_image"] = time.perf_counter() - start
    return Feedback(judgments, counts, candidates, seconds)
