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

Every stage is timed under its paper name (Appendix D) and logged as `time/<stage>`. The rollout engine
(`rollout.engine`, `ovip.train.engines`) samples in this thread or on policy servers, which get the adapter
after each update; the service stages (`ovip.train.stages`) send every request of a batch at once and put the
results back in prompt and pair order; `train.pipeline` (`ovip.train.pipeline`) says whether the next batches
are sampled while this one is with the services (`rollout/staleness`). The order in the main thread is
fixed, so a run is reproducible and resumable in every mode:

    loop:  updates while |B| >= N, each ending with a checkpoint (the batches in flight: their samples) and
           the new weights pushed to the policy servers
           sample batches until the pipeline is full, each sent to the services once sampled
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

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ovip.buffer import ExperienceBuffer
from ovip.config import Config, to_dict
from ovip.negatives.store import ImageCache, ImageStore
from ovip.policy.model import Policy
from ovip.progress import progress
from ovip.records import Describer, Example, Experience, ImageSynthesizer, Judge
from ovip.train import checkpoint
from ovip.train.conditions import score_conditions
from ovip.train.counters import Counters, ErrorBudget, ErrorLog, NonFiniteTraining, NoUpdates, ServiceFailure
from ovip.train.distributed import Ranks
from ovip.train.engines import SAMPLERS
from ovip.train.methods import method_of
from ovip.train.metrics import RunRecords
from ovip.train.objective import Forward
from ovip.train.pipeline import Pipeline
from ovip.train.rollout import Sampling
from ovip.train.runlog import run_log
from ovip.train.schedule import learning_rate
from ovip.train.stages import Feedback, SampledBatch, ServicePool, run_services
from ovip.train.timers import StageTimers
from ovip.train.trackers import Trackers

log = logging.getLogger(__name__)


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
        self.train_model = None  # the engine's module (DDP, ...), from Accelerator.prepare at the start
        self._optimizer_from: Path | None = None  # a checkpoint whose sharded optimizer loads after prepare
        self.sync_seconds = self.sync_total = 0.0  # waiting for the other ranks to agree on an update
        self.step, self.cursor, self.epoch = 0, 0, 0
        self.data_skipped = 0  # records train.skip_invalid dropped (set by the caller; in the summary)
        self.last_losses: dict[str, float] = {}  # loss/* of the latest update, for the summary (checkpointed)
        self.timers = StageTimers()
        self.sampler = SAMPLERS[cfg.rollout.engine](cfg, policy, examples, self.ranks, self.timers, run_dir)
        self.counters = Counters()
        self.window_start = Counters()  # the counters at the previous metrics line
        self.budget = ErrorBudget(cfg.train.max_failure_rate, cfg.train.failure_window)
        self.errors = ErrorLog()
        trackers = Trackers(cfg.train.report_to if self.ranks.main else [], self.run_dir, to_dict(cfg))
        self.records = RunRecords(self.run_dir, self.ranks, trackers)
        self.services = ServicePool(judge, describer, synthesizer)
        self.pipeline = Pipeline(cfg.train, self.feedback, self.timers)

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
            "inflight": self.pipeline.state(self.ranks),
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
        self.pipeline.restore(state.get("inflight", []), self.sampler.rebuild)
        self.last_losses = state.get("last_losses", {})
        self.schedule.load(state)
        self.records.truncate(state["log_bytes"], path.name)  # the resumed run writes those lines again
        return True

    # ----- Algorithm 1 ---------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run to the end of the data (see the module docstring for the order); returns the summary."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.services.closed = False
        self._prepare()
        self.sampler.start(self.step, self.train_model)  # a policy server gets this run's adapter
        log.info(
            "run folder %s: %d prompts from step %d, k=%d samples each, %d experiences per step%s",
            self.run_dir, self.total_prompts - self.cursor, self.step, self.cfg.rollout.k, self.cfg.train.batch_size,
            f", rank {self.ranks.rank} of {self.ranks.world}" if self.ranks.world > 1 else "",
        )  # fmt: skip
        quiet = not self.ranks.main  # rank 0 shows the progress of all
        bar = progress(total=self.total_prompts, initial=self.cursor, desc="ovip", unit="prompt", disable=quiet)  # fmt: skip
        with run_log(self.run_dir, log_name(self.ranks.rank)):
            try:
                while True:
                    while self._held() >= self.local_batch and self._may_update():
                        loss = self.update()["loss"]
                        bar.set_postfix(step=self.step, loss=_fmt(loss), buffer=len(self.buffer))
                    self.schedule.end_phase(self.cursor)
                    self.pipeline.fill(self.sample_batch, self.cursor, self.total_prompts)
                    if (oldest := self.pipeline.oldest()) is None:
                        break
                    batch, feedback = oldest
                    self.absorb(batch, feedback)
                    self.pipeline.done()
                    self.cursor = batch.end
                    bar.update(batch.end - batch.start)
            finally:
                for part in (self.pipeline, self.sampler, self.services, bar):
                    part.close()
                self.records.trackers.close()
            return self._finish()

    def sample_batch(self, start: int) -> Sampling:
        """Sampling (Eq. 1): this rank's share of the batch at `start`, k responses per prompt (a policy server
        samples it in a thread: `result()` waits for it)."""
        return self.sampler.sample(start, self.step, self.train_model, self.objective.judged)

    def feedback(self, batch: SampledBatch, turn=None) -> Feedback:
        """Scoring, selection, description and negative images of a batch (no model, no counter: may run in a
        worker thread)."""
        return run_services(self.services, batch, self.objective, self.pipeline.streamed, turn)

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
        self.sampler.verify(self.train_model)  # a policy server's samples against these weights
        batch = self.buffer.sample(self.local_batch)
        lr = learning_rate(cfg, self.schedule.progress(self.cursor))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        policy.model.train()
        m = cfg.model
        forward = Forward(self.train_model, policy, self.images, m.no_image, m.max_length, self.ranks.mean)
        self.images.ensure(p for e in batch for p in e.image_paths)
        self.objective.begin_step(forward, batch)
        sums: dict[str, float] = {}
        total, size = 0.0, cfg.train.micro_batch_size
        starts = range(0, len(batch), size)
        for start in starts:
            part = batch[start : start + size]
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
        metrics = {**metrics, **window, **self.sampler.metrics(), "time/wall": time.time()}
        metrics = self.records.write_metrics(metrics, self.step)
        if not finite:
            log.warning("step %d: non-finite loss or gradient (loss %s, grad_norm %s); update skipped",
                        self.step, total, float(grad_norm))  # fmt: skip
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
        self.sampler.synced(self.step, self.train_model, self.pipeline.inflight)  # the new weights pushed
        return metrics

    # ----- helpers -------------------------------------------------------------------------------------------
    def _check_budget(self, batch: SampledBatch, feedback: Feedback) -> None:
        """Add all calls of the batch to the error budget; past it (on any rank), save a checkpoint as if this
        batch had not come back (a resume sends it again) and stop."""
        exceeded = self.budget.check(batch, feedback, self.objective.negatives, self.errors, self.ranks)
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

    def _finish(self) -> dict:
        """The final checkpoint and summary.json; a run without an update raises NoUpdates, saying why."""
        self.save(final=True)
        summary, counters = self.records.write_summary(self, self.data_skipped)
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
        t = self.cfg.train
        self.train_model, self.optimizer = self.ranks.prepare(self.policy.model, self.optimizer, t.micro_batch_size, t.max_grad_norm)  # fmt: skip
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

    def _may_update(self) -> bool:
        allowed = self.pipeline.allows_update(self.step)  # no batch in flight left too many steps behind
        return allowed and self.schedule.may_update(self.cursor, self._held, self.local_batch)


def _fmt(loss: float | None) -> str:
    return "nan" if loss is None else f"{loss:.3f}"


def log_name(rank: int) -> str:
    """The run log of a rank: train.log for rank 0, train-rank1.log ... for the others."""
    return "train.log" if rank == 0 else f"train-rank{rank}.log"
