"""Sampling a rollout batch (Eq. 1): the prompts of a batch, their images, and k responses for each.

`LocalSampler` samples with the policy in the training process, through the unwrapped model (a sharded
engine gathers the weights for it), in one generate call per batch: this rank's share of the batch's prompts
(prompt i on rank i % world, `ovip.train.distributed`). A batch is all a checkpoint needs to rebuild it when
it is still in flight: its start, the step whose weights sampled it, and the sampled texts (`rebuild`).
"""

from __future__ import annotations

from ovip.config import Config
from ovip.data.images import load_image
from ovip.policy.rollout import prompt_seed, sample
from ovip.records import Example
from ovip.train.stages import Rollout, SampledBatch
from ovip.train.timers import StageTimers


class LocalSampler:
    def __init__(self, cfg: Config, policy, examples: list[Example], ranks, timers: StageTimers):
        self.cfg, self.policy, self.examples, self.ranks, self.timers = cfg, policy, examples, ranks, timers
        self.total = len(examples) * cfg.train.epochs

    def sample(self, start: int, step: int, train_model, judged: bool = True) -> SampledBatch:
        """k responses for each prompt of this rank's share of the batch at `start`, sampled by the weights
        after optimizer step `step`; none when the objective judges no samples (`judged=False`)."""
        cfg, policy = self.cfg, self.policy
        n = min(cfg.rollout.prompts_per_batch, self.total - start)
        examples, images = self._prompts(start, n)
        if not judged:
            return self.rebuild(start, step, [[] for _ in examples], n, examples, images)
        # Each prompt's seed is a function of train.seed and its position in the data order only (epochs
        # counted), so its samples do not depend on ranks, batch size or where they are sampled.
        seeds = [prompt_seed(cfg.train.seed, i) for i in self.ranks.share(start, n)]
        groups = []
        with self.timers("sampling"), self.ranks.full_model(train_model, policy.model) as model:
            if examples:
                groups = sample(
                    model, policy.processor, images, [e.query for e in examples], k=cfg.rollout.k,
                    temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                    max_new_tokens=cfg.rollout.max_new_tokens, seeds=seeds,
                )  # fmt: skip
        return self.rebuild(start, step, groups, n, examples, images)

    def rebuild(
        self, start, step, groups: list[list[str]], size=None, examples=None, images=None
    ) -> SampledBatch:
        """A batch from this rank's samples (images loaded again when resuming); `size` is the whole batch's
        number of prompts, over all ranks (a checkpoint of one process may lack it: then its own)."""
        size = len(groups) if size is None else size
        if examples is None:
            examples, images = self._prompts(start, size)
        rollouts = [
            Rollout(e, im, len(g), list(dict.fromkeys(g)), list(g))
            for e, im, g in zip(examples, images, groups, strict=True)
        ]
        return SampledBatch(start, step, [list(g) for g in groups], rollouts, size)

    def _prompts(self, start: int, n: int):
        examples = [self.examples[i % len(self.examples)] for i in self.ranks.share(start, n)]
        images = [load_image(e, self.cfg.train.max_image_pixels, self.policy.processor) for e in examples]
        return examples, images
