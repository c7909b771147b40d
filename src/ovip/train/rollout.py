"""Sampling a rollout batch (Eq. 1): the prompts of a batch, their images, and k responses for each.

A sampler (`rollout.engine`, `ovip.train.engines`) turns the batch at a start position of the data order into
a `Sampling`: the batch's prompts, the step whose weights sample it, and a future of its `SampledBatch`. This
rank's share of the batch's prompts is sampled (prompt i on rank i % world, `ovip.train.distributed`), each
prompt from its own seed, `prompt_seed(train.seed, i)`, so its samples do not depend on ranks, batch size or
where they are sampled.

`LocalSampler` samples with the policy in the training process, through the unwrapped model (a sharded
engine gathers the weights for it), in one generate call per batch, in the loop's own thread; its futures are
done when it returns. `ovip.train.rollout_server.ServerSampler` sends the prompts to policy servers from a
thread of its own. A batch is all a checkpoint needs to rebuild it when it is still in flight: its start, the
step whose weights sampled it, and the sampled texts (`BatchPrompts.rebuild`).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from ovip.config import Config
from ovip.data.images import load_image
from ovip.policy.rollout import prompt_seed, sample
from ovip.records import Example
from ovip.train.stages import Rollout, SampledBatch
from ovip.train.timers import StageTimers


@dataclass
class Sampling:
    """A rollout batch on its way: prompts [start, end) of the data order, sampled by the weights after
    optimizer step `step`; `result()` waits for its SampledBatch (this rank's share)."""

    start: int
    end: int
    step: int
    future: Future

    def result(self) -> SampledBatch:
        return self.future.result()

    @classmethod
    def done(cls, batch: SampledBatch) -> Sampling:
        future = Future()
        future.set_result(batch)
        return cls(batch.start, batch.end, batch.step, future)


class Sampler(Protocol):
    """What the loop asks of a rollout engine, in its own thread, at the same points on every rank."""

    def start(self, step: int, train_model) -> None:
        """Before the first batch of a run or of a resume, with the weights of optimizer step `step`."""

    def sample(self, start: int, step: int, train_model, judged: bool = True) -> Sampling: ...

    def rebuild(self, start, step, groups, size=None, examples=None, images=None) -> SampledBatch: ...

    def verify(self, train_model) -> None:
        """Before an optimizer step changes the weights."""

    def synced(self, step: int, train_model, inflight: list[Sampling]) -> None:
        """After optimizer step `step` (and its checkpoint); `inflight` are the batches not yet absorbed."""

    def metrics(self) -> dict:
        """This window's rollout metrics for the metrics line."""

    def close(self) -> None: ...


class BatchPrompts:
    """This rank's prompts of the batch at `start`: the examples, their images, their sampling seeds."""

    def __init__(self, cfg: Config, policy, examples: list[Example], ranks):
        self.cfg, self.policy, self.examples, self.ranks = cfg, policy, examples, ranks
        self.total = len(examples) * cfg.train.epochs

    def size(self, start: int) -> int:
        """Prompts of the whole batch at `start`, over all ranks."""
        return min(self.cfg.rollout.prompts_per_batch, self.total - start)

    def of(self, start: int, n: int):
        """(examples, images) of this rank's share of the n prompts at `start`."""
        examples = [self.examples[i % len(self.examples)] for i in self.ranks.share(start, n)]
        images = [load_image(e, self.cfg.train.max_image_pixels, self.policy.processor) for e in examples]
        return examples, images

    def seeds(self, start: int, n: int) -> list[int]:
        # A function of train.seed and the prompt's position in the data order only (epochs counted).
        return [prompt_seed(self.cfg.train.seed, i) for i in self.ranks.share(start, n)]

    def rebuild(
        self, start, step, groups: list[list[str]], size=None, examples=None, images=None, errors=None
    ) -> SampledBatch:
        """A batch from this rank's samples (images loaded again when resuming); `size` is the whole batch's
        number of prompts, over all ranks (a checkpoint of one process may lack it: then its own). `errors`:
        per prompt, why it has no samples (a failed request to a policy server), or None."""
        size = len(groups) if size is None else size
        if examples is None:
            examples, images = self.of(start, size)
        errors = errors or [None] * len(groups)
        rollouts = [
            Rollout(e, im, len(g), list(dict.fromkeys(g)), list(g), error)
            for e, im, g, error in zip(examples, images, groups, errors, strict=True)
        ]
        return SampledBatch(start, step, [list(g) for g in groups], rollouts, size)


class LocalSampler:
    pushes_adapter = False  # samples with the policy's own weights

    def __init__(
        self, cfg: Config, policy, examples: list[Example], ranks, timers: StageTimers, run_dir=None
    ):
        self.cfg, self.policy, self.ranks, self.timers = cfg, policy, ranks, timers
        self.prompts = BatchPrompts(cfg, policy, examples, ranks)
        self.rebuild = self.prompts.rebuild

    def sample(self, start: int, step: int, train_model, judged: bool = True) -> Sampling:
        """k responses for each prompt of this rank's share of the batch at `start`, sampled by the weights
        after optimizer step `step`; none when the objective judges no samples (`judged=False`)."""
        cfg, policy = self.cfg, self.policy
        n = self.prompts.size(start)
        examples, images = self.prompts.of(start, n)
        if not judged:
            return Sampling.done(self.rebuild(start, step, [[] for _ in examples], n, examples, images))
        groups = []
        with self.timers("sampling"), self.ranks.full_model(train_model, policy.model) as model:
            if examples:
                groups = sample(
                    model, policy.processor, images, [e.query for e in examples], k=cfg.rollout.k,
                    temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                    max_new_tokens=cfg.rollout.max_new_tokens, seeds=self.prompts.seeds(start, n),
                )  # fmt: skip
        return Sampling.done(self.rebuild(start, step, groups, n, examples, images))

    # The policy samples with its own weights: nothing to push, nothing to check.
    def start(self, step: int, train_model) -> None:
        pass

    def verify(self, train_model) -> None:
        pass

    def synced(self, step: int, train_model, inflight: list[Sampling]) -> None:
        pass

    def metrics(self) -> dict:
        return {}

    def close(self) -> None:
        pass
