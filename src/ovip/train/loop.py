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

Every stage is timed under its paper name (Appendix D) and logged as `time/<stage>`. The service stages
(`ovip.train.stages`) send every request of a batch at once, bounded per service, and put the results back in
prompt and pair order. `train.pipeline` says how batches follow each other:

- sequential: prompt after prompt and pair after pair, one batch after the other (Algorithm 1 read
  literally; only the k responses of one prompt go to the judge together);
- concurrent (default): all requests of a batch in flight; the same experiences and weights as sequential,
  with deterministic services, in the time of the slowest request of each stage instead of their sum;
- overlapped: while batch t is judged, described and drawn in a worker thread, the main thread samples
  batch t+1. Batch t+1 is sampled BEFORE the updates that batch t's experiences trigger, so it comes from
  weights at most one batch's updates old (`rollout/staleness`, in steps; Experience.step is the step whose
  weights sampled it). The paper's own system is asynchronous too (four samplers share a buffer, Appendix D).

The order in the main thread is fixed, so a run is reproducible and resumable in every mode:

    loop:  updates while |B| >= N             (a checkpoint here saves the batches in flight: their samples)
           sample batches until `depth` are in flight (1; 2 when overlapped), each sent to the services at once
           wait for the oldest; reference log-probs; buffer; cursor moves past it

The method (`train.method`, `ovip.train.methods`) is an objective and a schedule, and the loop only asks
them: the objective (`ovip.train.objective`) says what a judged prompt turns into (pairs with or without a
negative image, every judged sample with its advantage for GRPO, the reference answer for SFT), which
reference log-probs an experience stores and which loss the update applies; the schedule
(`ovip.train.schedule`) says when the buffer is trained on (whenever |B| >= N, after the whole data, or after
each 1/rounds of it) and where the learning rate's cosine stands.

Failures of the external services are counted values; a service that fails more than
`train.max_failure_rate` of its last `train.failure_window` calls stops the run with a checkpoint
(`ServiceFailure`), taken as if that batch had not come back, so a resume sends its requests again. An
update whose loss or gradient is not finite is not applied (`train/nonfinite_steps`); `max_nonfinite_steps`
of them in a row stop the run with a checkpoint (`NonFiniteTraining`). A run that ends without one optimizer
step raises `NoUpdates`, saying why.

With N ranks (`accelerate launch`, `ovip.train.distributed`) every rank runs this loop on its share of each
batch (prompt i on rank i % N) with its own buffer; an update starts when every rank holds N_global / N
experiences, the engine reduces the gradients, and rank 0 logs for all. A stop on one rank is a stop on all.
"""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import torch

from ovip.buffer import ExperienceBuffer
from ovip.config import Config, to_dict
from ovip.data.images import load_image
from ovip.negatives.store import ImageCache, ImageStore
from ovip.policy.model import Policy
from ovip.policy.rollout import prompt_seed, sample
from ovip.progress import progress
from ovip.records import Describer, Example, Experience, ImageSynthesizer, Judge
from ovip.train import checkpoint
from ovip.train.conditions import score_conditions
from ovip.train.counters import Counters, ErrorBudget, ErrorLog, ServiceFailure
from ovip.train.distributed import Ranks
from ovip.train.methods import method_of
from ovip.train.metrics import RunRecords
from ovip.train.objective import Forward
from ovip.train.runlog import RunLog
from ovip.train.schedule import learning_rate
from ovip.train.stages import Feedback, Rollout, SampledBatch, Services, run_services
from ovip.train.timers import StageTimers
from ovip.train.trackers import Trackers

log = logging.getLogger(__name__)


class NonFiniteTraining(RuntimeError):
    """`train.max_nonfinite_steps` updates in a row had a non-finite loss or gradient; the run stopped."""


class NoUpdates(RuntimeError):
    """The run ended without a single optimizer step; the message says why."""


class OnlineTrainer:
    def __init__(
        self,
        cfg: Config,
        policy: Policy,
        examples: list[Example],
        judge: Judge,
        describer: Describer,
        synthesizer: ImageSynthesizer,
        run_dir: Path,
        ranks: Ranks | None = None,
    ):
        self.cfg, self.policy, self.examples = cfg, policy, examples
        self.judge, self.describer, self.synthesizer = judge, describer, synthesizer
        self.run_dir = Path(run_dir)
        self.ranks = ranks or Ranks.start(cfg.model.device, cfg.train.collective_timeout)
        self.local_batch = self.ranks.local_batch(cfg.train.batch_size)  # N / world per rank and step
        self.buffer = ExperienceBuffer(seed=cfg.train.seed + 1_000_003 * self.ranks.rank)
        self.store = ImageStore(self.run_dir / "images")
        self.images = ImageCache(self.store, cfg.train.max_image_pixels, policy.processor)
        method = method_of(cfg)
        self.objective = method.objective(cfg)
        self.schedule = method.schedule(cfg, self.total_prompts)
        self.optimizer = torch.optim.AdamW(
            policy.trainable_parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
        )
        self.train_model = (
            None  # the engine's module (DDP, ...), from Accelerator.prepare when training starts
        )
        self._optimizer_from: Path | None = None  # a checkpoint whose sharded optimizer loads after prepare
        self.sync_seconds = self.sync_total = 0.0  # waiting for the other ranks to agree on an update
        self.step, self.cursor, self.epoch = 0, 0, 0
        self.inflight: list[SampledBatch] = []  # sampled, not yet in the buffer (checkpointed as samples)
        self.data_skipped = 0  # records train.skip_invalid dropped (set by the caller; in the summary)
        self.last_losses: dict[str, float] = {}  # loss/* of the latest update, for the summary (checkpointed)
        self.timers = StageTimers()
        self.counters = Counters()
        self.window_start = Counters()  # the counters at the previous metrics line
        self.budget = ErrorBudget(cfg.train.max_failure_rate, cfg.train.failure_window)
        self.errors = ErrorLog()
        trackers = Trackers(cfg.train.report_to if self.ranks.main else [], self.run_dir, to_dict(cfg))
        self.records = RunRecords(self.run_dir, self.ranks, trackers)
        # Threads per service: a remote one takes its clients' bound, an in-process one runs one call at a time.
        widths = {
            name: max(1, int(getattr(service, "max_in_flight", 1)))
            for name, service in (("judge", judge), ("describer", describer), ("negatives", synthesizer))
        }
        self.services = Services(judge, describer, synthesizer, widths)

    @property
    def total_prompts(self) -> int:
        return len(self.examples) * self.cfg.train.epochs

    # ----- state ---------------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step,
            "cursor": self.cursor,
            "epoch": self.epoch,
            "counters": asdict(self.counters),
            "window_start": asdict(self.window_start),
            "inflight": [b.state() for b in self.inflight],
            "log_bytes": self.records.sizes(),
            "last_losses": self.last_losses,
            **self.schedule.state(),
        }

    def resume(self) -> bool:
        path = checkpoint.latest(self.run_dir)
        if path is None:
            return False
        sharded = self.ranks.sharded
        state = checkpoint.load(
            path,
            self.policy,
            self.optimizer,
            self.buffer,
            self.ranks.rank,
            self.ranks.world,
            optimizer_now=not sharded,
        )
        self._optimizer_from = path if sharded else None
        self.step, self.cursor, self.epoch = state["step"], state["cursor"], state["epoch"]
        self.counters = Counters.of(state["counters"])
        self.window_start = Counters.of(state.get("window_start", state["counters"]))
        self.inflight = [
            self._rebuild(b["start"], b["step"], b["groups"], size=b.get("size"))
            for b in state.get("inflight", [])
        ]
        self.last_losses = state.get("last_losses", {})
        self.schedule.load(state)
        self.records.truncate(state["log_bytes"], path.name)  # the resumed run writes those lines again
        return True

    # ----- Algorithm 1 ---------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run to the end of the data (see the module docstring for the order); returns the summary."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        depth = 2 if self.cfg.train.pipeline == "overlapped" else 1  # batches in flight at once
        worker = ThreadPoolExecutor(1, thread_name_prefix="ovip-pipeline") if depth > 1 else None
        sent: dict[int, Future] = {}
        self.services.closed = False
        self._prepare()
        self._announce()
        bar = progress(
            total=self.total_prompts,
            initial=self.cursor,
            desc="ovip",
            unit="prompt",
            disable=not self.ranks.main,
        )
        with RunLog(self.run_dir, log_name(self.ranks.rank)):
            try:
                while True:
                    while self._held() >= self.local_batch and self.schedule.may_update(
                        self.cursor, self._held, self.local_batch
                    ):
                        loss = self.update()["loss"]
                        bar.set_postfix(
                            step=self.step,
                            loss="nan" if loss is None else f"{loss:.3f}",
                            buffer=len(self.buffer),
                        )
                    self.schedule.end_phase(self.cursor)
                    for batch in self.inflight:  # restored from a checkpoint: send them again, in order
                        if worker is not None and batch.start not in sent:
                            sent[batch.start] = worker.submit(self.feedback, batch)
                    while len(self.inflight) < depth and self._next_start() < self.total_prompts:
                        self.inflight.append(self.sample_batch(self._next_start()))
                        if worker is not None:
                            sent[self.inflight[-1].start] = worker.submit(self.feedback, self.inflight[-1])
                    if not self.inflight:
                        break
                    batch = self.inflight[0]
                    if worker is None:
                        feedback = self.feedback(batch)
                    else:
                        with self.timers("service_wait"):
                            feedback = sent.pop(batch.start).result()
                    self.absorb(batch, feedback)
                    self.inflight.pop(0)
                    self.cursor = batch.end
                    bar.update(batch.end - batch.start)
            finally:
                if worker is not None:
                    worker.shutdown(wait=False, cancel_futures=True)
                self.services.close()
                bar.close()
                self.records.trackers.close()
            return self._finish()

    def sample_batch(self, start: int) -> SampledBatch:
        """Sampling (Eq. 1): k responses for each prompt of this rank's share of the batch at `start`, in one
        generate call (through the unwrapped policy); nothing for an objective that judges no samples."""
        cfg, policy = self.cfg, self.policy
        n = min(cfg.rollout.prompts_per_batch, self.total_prompts - start)
        examples = [self.examples[i % len(self.examples)] for i in self.ranks.share(start, n)]
        images = [load_image(e, cfg.train.max_image_pixels, policy.processor) for e in examples]
        if not self.objective.judged:
            return self._rebuild(start, self.step, [[] for _ in examples], examples, images, size=n)
        # Each prompt's seed is a function of train.seed and its position in the data order only (epochs
        # counted), so its samples do not depend on ranks, batch size or where they are sampled.
        seeds = [prompt_seed(cfg.train.seed, i) for i in self.ranks.share(start, n)]
        groups = []
        with self.timers("sampling"), self.ranks.full_model(self.train_model, policy.model) as model:
            if examples:
                groups = sample(
                    model, policy.processor, images, [e.query for e in examples], k=cfg.rollout.k,
                    temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                    max_new_tokens=cfg.rollout.max_new_tokens, seeds=seeds,
                )  # fmt: skip
        return self._rebuild(start, self.step, groups, examples, images, size=n)

    def feedback(self, batch: SampledBatch) -> Feedback:
        """Scoring, selection, description and negative images of a batch (no model, no counter: may run in a
        worker thread)."""
        streamed = self.cfg.train.pipeline != "sequential"
        return run_services(self.services, batch, self.objective, streamed=streamed)

    def absorb(self, batch: SampledBatch, feedback: Feedback) -> list[Experience]:
        """Check the error budget, count a batch's feedback, and put its experiences, with their reference
        log-probs, into the buffer. Runs in the main thread, in batch order."""
        for stage, seconds in feedback.seconds.items():
            self.timers.add(stage, seconds)
        self._check_budget(batch, feedback)
        self.counters.add_batch(batch, feedback, self.objective.negatives, self.step)
        experiences = self.to_experiences(batch, feedback)
        if self.objective.reference_conditions:
            self.reference_logps(experiences)
        if experiences:
            self.buffer.add(experiences)
            self.counters.experiences += len(experiences)
        self.records.write_experiences(experiences)
        return experiences

    def to_experiences(self, batch: SampledBatch, feedback: Feedback) -> list[Experience]:
        """The candidates as buffer records (Appendix F): with negative images, only the pairs whose
        description and image came back. Images go to the run's store (once) and the cache."""
        out = []
        for cand in feedback.candidates:
            if self.objective.negatives and not cand.drawn:
                continue
            rollout = batch.rollouts[cand.prompt]
            positive = rollout.example.image_path or self.store.put(rollout.image)
            self.images.put(positive, rollout.image)
            negative = ""
            if self.objective.negatives:
                negative = self.store.put(cand.negative.image)
                self.images.put(negative, cand.negative.image)
            out.append(self.objective.experience(cand, rollout, positive, negative, batch.step))
        return out

    def reference_logps(self, experiences: list[Experience]) -> None:
        """log pi_ref of the objective's conditions, once, as an experience enters the buffer: the reference
        never changes within a run (the policy with its adapters disabled)."""
        cfg, policy, names = self.cfg, self.policy, self.objective.reference_conditions
        with self.ranks.full_model(self.train_model, policy.model):  # every rank, its share empty or not
            if not experiences:
                return
            with self.timers("forward"), policy.reference() as ref:
                logps = score_conditions(
                    ref, policy.processor, experiences, names, self.images, cfg.model.no_image,
                    cfg.train.micro_batch_size, cfg.model.max_length,
                )  # fmt: skip
        for i, exp in enumerate(experiences):
            exp.reference_logps = logps.as_floats(i)

    def update(self) -> dict:
        """One optimizer step on N experiences: N / world drawn from each rank's buffer, in micro-batches whose
        gradients the engine reduces over the ranks on the last one (Accelerator.backward)."""
        cfg, policy = self.cfg, self.policy
        self._prepare()
        batch = self.buffer.sample(self.local_batch)
        lr = learning_rate(cfg, self.schedule.progress(self.cursor))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        policy.model.train()
        forward = Forward(self.train_model, policy, self.images, cfg.model.no_image, cfg.model.max_length)
        sums: dict[str, float] = {}
        total, size = 0.0, cfg.train.micro_batch_size
        starts = range(0, len(batch), size)
        for start in starts:
            part = batch[start : start + size]
            self.images.ensure(p for e in part for p in e.image_paths)
            with self.ranks.accumulating(self.train_model, last=start == starts[-1]):
                with self.timers("forward"):
                    terms = self.objective.loss(forward, part)
                    loss = terms.total.sum() / len(batch)  # this rank's mean; the engine averages the ranks
                with self.timers("post_processing"):
                    self.ranks.backward(loss)
            total += float(loss.detach())
            for k, v in terms.metrics.items():
                sums[k] = sums.get(k, 0.0) + v * len(part) / len(batch)
        with self.timers("post_processing"):
            grad_norm = self.ranks.clip_grad_norm(
                self.train_model, policy.trainable_parameters(), cfg.train.max_grad_norm
            )
            total = self.ranks.mean(total)  # every rank decides alike whether the step is applied
            finite = math.isfinite(total) and bool(torch.isfinite(grad_norm))
            if finite:  # a NaN or inf step would reach every weight through AdamW's moments
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        policy.model.eval()
        self.step += 1
        c = self.counters
        c.nonfinite_steps += not finite
        c.nonfinite_streak = 0 if finite else c.nonfinite_streak + 1
        self.images.keep_only({p for e in self.buffer.items for p in e.image_paths})
        window = self.records.window(
            sums, len(self.buffer), c, self.window_start, self.timers.metrics(), self.sync_seconds
        )
        self.sync_seconds = 0.0
        metrics = {
            "step": self.step,
            "loss": total,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "prompts": self.cursor,
        }
        metrics = self.records.write_metrics({**metrics, **window, "time/wall": time.time()}, self.step)
        if not finite:
            log.warning(
                "step %d: non-finite loss or gradient (loss %s, grad_norm %s); update skipped",
                self.step,
                total,
                float(grad_norm),
            )
        self.last_losses = {k: v for k, v in metrics.items() if k.startswith("loss")}
        self.window_start = self.counters.copy()
        if c.nonfinite_streak >= cfg.train.max_nonfinite_steps:
            path = self.save()
            raise NonFiniteTraining(
                f"{c.nonfinite_streak} updates in a row had a non-finite loss or gradient "
                f"(train.max_nonfinite_steps={cfg.train.max_nonfinite_steps}); stopped at step {self.step} with "
                f"the weights of the last finite update saved in {path}. Lower train.lr or check the data"
            )
        if cfg.train.save_every and self.step % cfg.train.save_every == 0:
            self.save()
        return metrics

    # ----- helpers -------------------------------------------------------------------------------------------
    def _check_budget(self, batch: SampledBatch, feedback: Feedback) -> None:
        """Add all calls of the batch to the error budget (every failure to the log); past the budget, save a
        checkpoint as if this batch had not come back (a resume sends it again) and stop."""
        self.budget.record_batch(feedback, self.objective.negatives, self.errors)
        exceeded = self.budget.exceeded()
        if self.ranks.world > 1:  # one rank's stop is every rank's, each with its checkpoint
            stops = [
                f"rank {r}: {text}" for r, text in self.ranks.gather((self.ranks.rank, exceeded)) if text
            ]
            exceeded = "; ".join(stops) or None
        if exceeded:
            path = self.save()
            message = (
                f"{exceeded}; stopped at step {self.step} with a checkpoint in {path} that sends the "
                f"prompts from {batch.start} again: bring the service back, then `ovip train --resume "
                f"{self.run_dir}`; every error is in {self.run_dir / 'train.log'}"
                + (" and the other ranks' train-rank<R>.log" if self.ranks.world > 1 else "")
            )
            log.error("%s", message, extra={"console": False})
            raise ServiceFailure(message)

    def _announce(self) -> None:
        cfg = self.cfg
        log.info(
            "run folder %s: %d prompts from step %d, k=%d samples each, %d experiences per step%s",
            self.run_dir, self.total_prompts - self.cursor, self.step, cfg.rollout.k, cfg.train.batch_size,
            f", rank {self.ranks.rank} of {self.ranks.world}" if self.ranks.world > 1 else "",
        )  # fmt: skip

    def _finish(self) -> dict:
        """The final checkpoint and summary.json; a run without an update raises NoUpdates, saying why."""
        self.save(final=True)
        everyone = self.ranks.gather((len(self.buffer), self.counters, self.sync_total))
        counters = Counters.combine([e[1] for e in everyone])
        summary = {
            "step": self.step,
            "prompts": self.cursor,
            "buffer_left": sum(e[0] for e in everyone),
            "data/skipped": self.data_skipped,
            **counters.metrics(),
            **self.last_losses,
        }
        if self.ranks.world > 1:
            summary |= {
                "ranks": self.ranks.world,
                "buffer_left_per_rank": [e[0] for e in everyone],
                "time/sync_wait_per_rank": [round(e[2], 3) for e in everyone],
            }
        if self.ranks.main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if self.step == 0:
            first = "; ".join(list(self.errors.first.values())[:3])
            message = (
                counters.why_no_updates(self.cfg.train.batch_size)
                + (f"; first errors: {first}" if first else "")
                + f"; details in {self.run_dir / 'train.log'}"
            )
            log.error("%s", message, extra={"console": False})
            raise NoUpdates(message)
        return summary

    def save(self, final: bool = False) -> Path:
        return checkpoint.save(
            self.run_dir, self.policy, self.optimizer, self.buffer, self.state(), keep=self.cfg.train.keep_checkpoints,
            final=final, ranks=self.ranks, train_model=self.train_model,
        )  # fmt: skip

    def _prepare(self) -> None:
        """Model and optimizer through Accelerator.prepare, once, after a resume has loaded the adapter (an
        engine that shards the weights takes them from the unwrapped model)."""
        if self.train_model is not None:
            return
        cfg = self.cfg
        self.train_model, self.optimizer = self.ranks.prepare(
            self.policy.model, self.optimizer, cfg.train.micro_batch_size, cfg.train.max_grad_norm
        )
        if self._optimizer_from is not None:
            checkpoint.load_optimizer(self._optimizer_from, self.optimizer, self.ranks.rank, sharded=True)

    def _held(self) -> int:
        """Experiences the emptiest rank's buffer holds (one collective): an update needs every rank's share.
        The wait here for the slowest rank is the stall of Appendix D (`time/sync_wait`)."""
        start = time.perf_counter()
        held = self.ranks.min(len(self.buffer))
        if self.ranks.world > 1:
            self.sync_seconds += time.perf_counter() - start
            self.sync_total += time.perf_counter() - start
        return held

    def _next_start(self) -> int:
        return self.inflight[-1].end if self.inflight else self.cursor

    def _rebuild(
        self, start: int, step: int, groups: list[list[str]], examples=None, images=None, size=None
    ) -> SampledBatch:
        """A batch from this rank's samples (images loaded again when resuming); `size` is the whole batch's
        number of prompts, over all ranks (a checkpoint of one process may lack it: then its own)."""
        size = len(groups) if size is None else size
        if examples is None:
            examples = [self.examples[i % len(self.examples)] for i in self.ranks.share(start, size)]
            images = [load_image(e, self.cfg.train.max_image_pixels, self.policy.processor) for e in examples]
        rollouts = [
            Rollout(e, im, len(g), list(dict.fromkeys(g)))
            for e, im, g in zip(examples, images, groups, strict=True)
        ]
        return SampledBatch(start, step, [list(g) for g in groups], rollouts, size)


def log_name(rank: int) -> str:
    """The run log of a rank: train.log for rank 0, train-rank1.log ... for the others."""
    return "train.log" if rank == 0 else f"train-rank{rank}.log"
