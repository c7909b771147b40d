"""The OViP online loop, in the order of Algorithm 1 (Table 6).

    for each batch of (I+, Q, A*) in D:
        sampling        A^1..A^k ~ pi(. | I+, Q)                                   Eq. 1
        scoring         r^i = G_r(Q, A^i, A*)                                      Eq. 1
        (pairs)         (A+, A-) by Eq. 2, or (A*, worst) as the fallback
        description     T- = G_diff(Q, A+, A-)
        negative_image  I- = Diff(T-)                                              Eq. 3
        forward         reference log-probs once, then Experience -> buffer B
        while |B| >= N:
            forward         L_OViP = L_Text + L_Image over N experiences           Eq. 4-6
            post_processing backward, clip, AdamW step, checkpoint

Every stage is timed under its paper name (Appendix D) and logged as `time/<stage>`. Failures of the external
services (judge, describer, image synthesis) are counted values; the run goes on. An update whose loss or
gradient is not finite is not applied (counted in `train/nonfinite_steps`); `train.max_nonfinite_steps` of
them in a row stop the run with a checkpoint and `NonFiniteTraining`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ovip.buffer import ExperienceBuffer
from ovip.config import Config, to_dict
from ovip.data.images import load_image
from ovip.negatives.store import ImageStore
from ovip.pairs import PairRule, select_pairs, select_pairs_released_code
from ovip.policy.model import Policy
from ovip.policy.rollout import sample
from ovip.progress import progress
from ovip.records import (
    Describer,
    Description,
    Example,
    Experience,
    ImageSynthesizer,
    Judge,
    Judgment,
    NegativeImage,
)
from ovip.train import checkpoint
from ovip.train.objective import needed_conditions, ovip_loss, reference_tensors, score_conditions
from ovip.train.timers import StageTimers
from ovip.train.trackers import Trackers


@dataclass
class Counters:
    """Running totals, saved with checkpoints; their ratios are the judge/*, pairs/*, negatives/* metrics."""

    prompts: int = 0
    responses: int = 0
    distinct_responses: int = 0
    judged: int = 0
    judge_failures: int = 0
    score_sum: float = 0.0
    pairs: int = 0
    fallback_pairs: int = 0
    prompts_without_pair: int = 0
    description_failures: int = 0
    negative_failures: int = 0
    experiences: int = 0
    nonfinite_steps: int = 0
    nonfinite_streak: int = 0
    extra: dict = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        div = lambda a, b: a / b if b else 0.0  # noqa: E731
        return {
            "judge/failure_rate": div(self.judge_failures, self.judged),
            "judge/mean_score": div(self.score_sum, self.judged - self.judge_failures),
            "pairs/per_prompt": div(self.pairs, self.prompts),
            "pairs/fallback_rate": div(self.fallback_pairs, self.pairs),
            "pairs/prompts_without_pair": div(self.prompts_without_pair, self.prompts),
            "rollout/distinct_per_prompt": div(self.distinct_responses, self.prompts),
            "negatives/description_failures": self.description_failures,
            "negatives/failures": self.negative_failures,
            "experiences/total": self.experiences,
            "train/nonfinite_steps": self.nonfinite_steps,
        }


def learning_rate(cfg: Config, progress: float) -> float:
    """Linear warmup then cosine decay to 0 over the run (B.2: cosine schedule).

    `progress` is the share of the data consumed. An online run's step count depends on its pair yield and is
    unknown in advance, so the schedule follows the data cursor instead of the step count.
    """
    warm = cfg.train.warmup_ratio
    if warm and progress < warm:
        return cfg.train.lr * progress / warm
    frac = (progress - warm) / max(1e-12, 1 - warm)
    return cfg.train.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def derive_seed(base: int, *parts: str) -> int:
    """A seed of its own for each negative image, from the run's `negatives.seed` and what the image is for
    (the example and the rejected answer): stable across runs and resumes, different between experiences, so
    that no two negatives share a background, a crop box or a random pick."""
    digest = hashlib.sha256("\x1f".join([str(base), *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


log = logging.getLogger(__name__)
LOGS = ("metrics.jsonl", "experiences.jsonl")


class NonFiniteTraining(RuntimeError):
    """`train.max_nonfinite_steps` updates in a row had a non-finite loss or gradient; the run stopped."""


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


class OnlineTrainer:
    def __init__(self, cfg: Config, policy: Policy, examples: list[Example], judge: Judge, describer: Describer,
                 synthesizer: ImageSynthesizer, run_dir: Path):
        self.cfg, self.policy, self.examples = cfg, policy, examples
        self.judge, self.describer, self.synthesizer = judge, describer, synthesizer
        self.run_dir = Path(run_dir)
        self.store = ImageStore(self.run_dir / "images")
        self.buffer = ExperienceBuffer(seed=cfg.train.seed)
        self.timers = StageTimers()
        self.counters = Counters()
        self.names = needed_conditions(cfg.loss)
        self.optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        self.step, self.cursor, self.epoch = 0, 0, 0
        self.data_skipped = 0  # records train.skip_invalid dropped (set by the caller; reported in the summary)
        self.last_losses: dict[str, float] = {}  # loss/* of the latest update, for the summary (checkpointed)
        self._images: dict[str, object] = {}
        self.rule = PairRule(cfg.pairs.delta, cfg.pairs.tau_pos, cfg.pairs.tau_neg, cfg.pairs.reference_fallback)
        self.trackers = Trackers(cfg.train.report_to, self.run_dir, to_dict(cfg))  # train.report_to

    # ----- state ---------------------------------------------------------------------------------------------
    def state(self) -> dict:
        logs = {name: (self.run_dir / name).stat().st_size if (self.run_dir / name).exists() else 0
                for name in LOGS}
        return {"step": self.step, "cursor": self.cursor, "epoch": self.epoch, "counters": asdict(self.counters),
                "log_bytes": logs, "last_losses": self.last_losses}

    def resume(self) -> bool:
        path = checkpoint.latest(self.run_dir)
        if path is None:
            return False
        state = checkpoint.load(path, self.policy, self.optimizer, self.buffer)
        self.step, self.cursor, self.epoch = state["step"], state["cursor"], state["epoch"]
        self.counters = Counters(**state["counters"])
        self.last_losses = state.get("last_losses", {})
        # Drop log lines written after the checkpoint: the resumed run writes them again. A log shorter than
        # the checkpoint says is not this run's log (truncate() would pad it with NUL bytes).
        for name, size in state["log_bytes"].items():
            log_file = self.run_dir / name
            have = log_file.stat().st_size if log_file.exists() else 0
            if have < size:
                raise ValueError(f"{log_file} has {have} bytes, fewer than the {size} that checkpoint {path.name} "
                                   "recorded: the logs and checkpoints of this folder are not from one run")
            if log_file.exists():
                with open(log_file, "r+b") as f:
                    f.truncate(size)
        return True

    @property
    def total_prompts(self) -> int:
        return len(self.examples) * self.cfg.train.epochs

    # ----- Algorithm 1 ---------------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log.info("run folder %s: %d prompts from step %d, k=%d samples each, %d experiences per step",
                 self.run_dir, self.total_prompts - self.cursor, self.step, cfg.rollout.k, cfg.train.batch_size)
        bar = progress(total=self.total_prompts, initial=self.cursor, desc="ovip", unit="prompt")
        while True:
            while len(self.buffer) >= cfg.train.batch_size:
                last = self.update()
                loss = "nan" if last["loss"] is None else f"{last['loss']:.3f}"
                bar.set_postfix(step=self.step, loss=loss, buffer=len(self.buffer))
            if self.cursor >= self.total_prompts:
                break
            n = min(cfg.rollout.prompts_per_batch, self.total_prompts - self.cursor)
            batch = [self.examples[(self.cursor + i) % len(self.examples)] for i in range(n)]
            self.buffer.add(self.collect(batch, seed=cfg.train.seed * 1_000_003 + self.cursor))
            self.cursor += n
            bar.update(n)
        bar.close()
        self.trackers.close()
        self.save(final=True)
        summary = {"step": self.step, "prompts": self.cursor, "buffer_left": len(self.buffer),
                   "data/skipped": self.data_skipped, **self.counters.metrics(),
                   **self.last_losses}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def collect(self, batch: list[Example], seed: int) -> list[Experience]:
        """Sampling, scoring, pairs, description and negative images for a batch of prompts."""
        cfg, policy = self.cfg, self.policy
        images = [load_image(e, cfg.train.max_image_pixels, policy.processor) for e in batch]
        with self.timers("sampling"):
            groups = sample(policy.model, policy.processor, images, [e.query for e in batch], k=cfg.rollout.k,
                            temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                            max_new_tokens=cfg.rollout.max_new_tokens, seed=seed)
        experiences = []
        pending = []
        for example, image, sampled in zip(batch, images, groups, strict=True):
            c = self.counters
            c.prompts += 1
            c.responses += len(sampled)
            # Exact duplicates are dropped before scoring, as in the authors' code (a Python set): a response the
            # policy repeats would otherwise be paired several times and weigh several times in the update.
            responses = list(dict.fromkeys(sampled))
            c.distinct_responses += len(responses)
            with self.timers("scoring"):
                judgments, error = guarded(self.judge.judge, example.query, responses, example.reference)
            if error:
                judgments = [Judgment(r, None, error=error) for r in responses]
            scores = [j.score for j in judgments]
            c.judged += len(judgments)
            c.judge_failures += sum(s is None for s in scores)
            c.score_sum += sum(s for s in scores if s is not None)
            if cfg.pairs.rule == "paper":
                pairs = select_pairs(scores, self.rule)
            else:
                pairs = select_pairs_released_code(scores, cfg.pairs.reference_fallback)
            c.prompts_without_pair += not pairs
            for pair in pairs:
                chosen = example.reference if pair.chosen is None else responses[pair.chosen]
                chosen_score = 10.0 if pair.chosen is None else scores[pair.chosen]
                rejected = responses[pair.rejected]
                with self.timers("description"):
                    description, error = guarded(self.describer.describe, example.query, chosen, rejected)
                description = Description(None, error=error) if error else description
                if not description.ok:
                    c.description_failures += 1
                    continue
                negative_seed = derive_seed(cfg.negatives.seed, example.id, rejected)
                with self.timers("negative_image"):
                    negative, error = guarded(self.synthesizer.synthesize, description.text, image,
                                              seed=negative_seed)
                negative = NegativeImage(None, error=error) if error else negative
                if not negative.ok:
                    c.negative_failures += 1
                    continue
                c.pairs += 1
                c.fallback_pairs += pair.chosen is None
                positive_path = example.image_path or self.store.put(image)
                negative_path = self.store.put(negative.image)
                self._images[positive_path], self._images[negative_path] = image, negative.image
                pending.append(Experience(
                    example_id=example.id, query=example.query, image_path=positive_path,
                    negative_image_path=negative_path, chosen=chosen, rejected=rejected,
                    chosen_score=float(chosen_score), rejected_score=float(scores[pair.rejected]),
                    fallback=pair.chosen is None, description=description.text, reference_logps={},
                    step=self.step, negative_seed=negative_seed))
        if pending:
            # The reference is fixed for the whole run: its log-probs are computed once, here.
            with self.timers("forward"), self.policy.reference() as ref:
                ref_logps = score_conditions(ref, policy.processor, pending, self.names, self._images,
                                             cfg.model.no_image, cfg.train.micro_batch_size, cfg.model.max_length)
            for i, exp in enumerate(pending):
                exp.reference_logps = {n: float(ref_logps[n][i]) for n in self.names}
            experiences.extend(pending)
            self.counters.experiences += len(pending)
            self._log_experiences(pending)
        return experiences

    def update(self) -> dict:
        """One optimizer step on N experiences drawn from the buffer (gradient accumulation in micro-batches)."""
        cfg, policy = self.cfg, self.policy
        batch = self.buffer.sample(cfg.train.batch_size)
        lr = learning_rate(cfg, self.cursor / max(1, self.total_prompts))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        policy.model.train()
        sums: dict[str, float] = {}
        total = 0.0
        size = cfg.train.micro_batch_size
        for start in range(0, len(batch), size):
            part = batch[start:start + size]
            self._ensure_images(part)
            with self.timers("forward"):
                logps = score_conditions(policy.model, policy.processor, part, self.names, self._images,
                                         cfg.model.no_image, None, cfg.model.max_length)
                terms = ovip_loss(logps, reference_tensors(part, self.names, policy.device), cfg.loss)
                loss = terms.total.sum() / len(batch)
            with self.timers("post_processing"):
                loss.backward()
            total += float(loss.detach())
            for k, v in terms.metrics.items():
                sums[k] = sums.get(k, 0.0) + v * len(part) / len(batch)
        with self.timers("post_processing"):
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.train.max_grad_norm)
            finite = math.isfinite(total) and bool(torch.isfinite(grad_norm))
            if finite:  # a NaN or inf step would reach every weight through AdamW's moments
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        policy.model.eval()
        self.step += 1
        c = self.counters
        c.nonfinite_steps += not finite
        c.nonfinite_streak = 0 if finite else c.nonfinite_streak + 1
        live = {p for e in self.buffer.items for p in (e.image_path, e.negative_image_path)}
        self._images = {p: im for p, im in self._images.items() if p in live}  # bounded by the buffer
        metrics = {"step": self.step, "loss": total, "lr": lr, "grad_norm": float(grad_norm),
                   "prompts": self.cursor, "buffer/size": len(self.buffer), **sums, **self.counters.metrics(),
                   **self.timers.metrics(), "time/wall": time.time()}
        if not finite:
            log.warning("step %d: non-finite loss or gradient (loss %s, grad_norm %s); update skipped",
                        self.step, total, float(grad_norm))
        metrics = {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()}
        self.last_losses = {k: v for k, v in metrics.items() if k.startswith("loss")}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        self.trackers.log(metrics, self.step)
        if c.nonfinite_streak >= cfg.train.max_nonfinite_steps:
            path = self.save()
            self.trackers.close()
            raise NonFiniteTraining(
                f"{c.nonfinite_streak} updates in a row had a non-finite loss or gradient "
                f"(train.max_nonfinite_steps={cfg.train.max_nonfinite_steps}); stopped at step {self.step} with "
                f"the weights of the last finite update saved in {path}. Lower train.lr or check the data")
        if cfg.train.save_every and self.step % cfg.train.save_every == 0:
            self.save()
        return metrics

    # ----- helpers -------------------------------------------------------------------------------------------
    def save(self, final: bool = False) -> Path:
        return checkpoint.save(self.run_dir, self.policy, self.optimizer, self.buffer, self.state(),
                               keep=self.cfg.train.keep_checkpoints, final=final)

    def _ensure_images(self, experiences: list[Experience]) -> None:
        """Images of buffer items read again (after a resume): as `collect` loaded them, from the store of this
        run folder when the folder has moved since."""
        for e in experiences:
            for path in (e.image_path, e.negative_image_path):
                if path not in self._images:
                    found = path if Path(path).exists() else str(self.store.root / Path(path).name)
                    record = Example(id=path, query="", reference="", image_path=found)
                    self._images[path] = load_image(record, self.cfg.train.max_image_pixels, self.policy.processor)

    def _log_experiences(self, experiences: list[Experience]) -> None:
        with open(self.run_dir / "experiences.jsonl", "a") as f:
            for e in experiences:
                f.write(json.dumps(asdict(e)) + "\n")
