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

The method (`train.method`, `ovip.train.methods`) decides what a prompt turns into (pairs with or without a
negative image, every judged sample with its advantage for GRPO, the reference answer for SFT), which loss the
update applies, and when the buffer is trained on: whenever |B| >= N (online, Appendix F), after the whole data
(offline: sampled once by the initial model), or after each 1/rounds of it (iterative). Off the online
schedule the learning rate follows the updates of each training phase instead of the data cursor, so an offline
phase still runs its cosine from the peak to 0.

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
from ovip.negatives.store import ImageStore
from ovip.pairs import PairRule
from ovip.policy.model import Policy
from ovip.policy.rollout import sample
from ovip.progress import progress
from ovip.records import Describer, Example, Experience, ImageSynthesizer, Judge
from ovip.train import checkpoint
from ovip.train.counters import Counters, ErrorBudget, ErrorLog, ServiceFailure, min_distinct
from ovip.train.distributed import Ranks
from ovip.train.methods import method_of
from ovip.train.objective import (
    Logps,
    LossTerms,
    grpo_terms,
    needed_conditions,
    ovip_loss,
    score_conditions,
    sft_terms,
)
from ovip.train.runlog import RunLog
from ovip.train.stages import (  # noqa: F401  (derive_seed, guarded: public names of the loop)
    Candidate,
    Feedback,
    Rollout,
    SampledBatch,
    Services,
    derive_seed,
    guarded,
    run_services,
)
from ovip.train.timers import StageTimers
from ovip.train.trackers import Trackers


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


log = logging.getLogger(__name__)
LOGS = ("metrics.jsonl", "experiences.jsonl")


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
        self.store = ImageStore(self.run_dir / "images")
        self.ranks = ranks or Ranks.start(cfg.model.device, cfg.train.collective_timeout)
        self.local_batch = self.ranks.local_batch(
            cfg.train.batch_size
        )  # N / world experiences per rank and step
        self.buffer = ExperienceBuffer(seed=cfg.train.seed + 1_000_003 * self.ranks.rank)
        self.timers = StageTimers()
        self.counters = Counters()
        self.window_start = Counters()  # the counters at the previous metrics line
        self.method = method_of(cfg)
        self.names = needed_conditions(cfg.loss) if self.method.objective == "pairs" else ("chosen|image",)
        self.optimizer = torch.optim.AdamW(
            policy.trainable_parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
        )
        self.train_model = (
            None  # the engine's module (DDP, ...), from Accelerator.prepare when training starts
        )
        self._optimizer_from: Path | None = None  # a checkpoint whose sharded optimizer loads after prepare
        self.sync_seconds = 0.0  # waiting for the other ranks at the update agreement (time/sync_wait)
        self.sync_total = 0.0
        self.step, self.cursor, self.epoch = 0, 0, 0
        # Off the online schedule: the buffer is trained on once the cursor reaches `phase_end`; `phase` holds
        # (cursor at the phase's start, updates the phase will make, updates made) while it drains.
        self.phase_start, self.phase_end = 0, self._next_phase_end(0)
        self.phase: list[int] | None = None
        self.inflight: list[SampledBatch] = []  # sampled, not yet in the buffer (checkpointed as samples)
        self.data_skipped = (
            0  # records train.skip_invalid dropped (set by the caller; reported in the summary)
        )
        self.last_losses: dict[str, float] = {}  # loss/* of the latest update, for the summary (checkpointed)
        self._images: dict[str, object] = {}
        self.rule = PairRule(
            cfg.pairs.delta, cfg.pairs.tau_pos, cfg.pairs.tau_neg, cfg.pairs.reference_fallback
        )
        self.trackers = Trackers(
            cfg.train.report_to if self.ranks.main else [], self.run_dir, to_dict(cfg)
        )  # train.report_to, rank 0 only
        # Threads per service: a remote one takes its clients' bound, an in-process one runs one call at a time.
        widths = {
            name: max(1, int(getattr(service, "max_in_flight", 1)))
            for name, service in (("judge", judge), ("describer", describer), ("negatives", synthesizer))
        }
        self.services = Services(judge, describer, synthesizer, widths)
        self.budget = ErrorBudget(cfg.train.max_failure_rate, cfg.train.failure_window)
        self.errors = ErrorLog()

    # ----- state ---------------------------------------------------------------------------------------------
    def state(self) -> dict:
        logs = {
            name: (self.run_dir / name).stat().st_size if (self.run_dir / name).exists() else 0
            for name in LOGS
        }
        return {
            "step": self.step,
            "cursor": self.cursor,
            "epoch": self.epoch,
            "counters": asdict(self.counters),
            "window_start": asdict(self.window_start),
            "inflight": [b.state() for b in self.inflight],
            "log_bytes": logs,
            "last_losses": self.last_losses,
            "phase_start": self.phase_start,
            "phase_end": self.phase_end,
            "phase": self.phase,
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
        self.counters = Counters(**state["counters"])
        self.window_start = Counters(**state.get("window_start", state["counters"]))
        self.inflight = [
            self._rebuild(b["start"], b["step"], b["groups"], size=b.get("size"))
            for b in state.get("inflight", [])
        ]
        self.last_losses = state.get("last_losses", {})
        self.phase_start = state.get("phase_start", 0)
        self.phase_end = state.get("phase_end", self.phase_end)
        self.phase = state.get("phase")
        # Drop log lines written after the checkpoint: the resumed run writes them again. A log shorter than
        # the checkpoint says is not this run's log (truncate() would pad it with NUL bytes). Rank 0 owns them.
        for name, size in state["log_bytes"].items() if self.ranks.main else ():
            log_file = self.run_dir / name
            have = log_file.stat().st_size if log_file.exists() else 0
            if have < size:
                raise ValueError(
                    f"{log_file} has {have} bytes, fewer than the {size} that checkpoint {path.name} "
                    "recorded: the logs and checkpoints of this folder are not from one run"
                )
            if log_file.exists():
                with open(log_file, "r+b") as f:
                    f.truncate(size)
        return True

    @property
    def total_prompts(self) -> int:
        return len(self.examples) * self.cfg.train.epochs

    # ----- Algorithm 1 ---------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run to the end of the data (see the module docstring for the order); returns the summary."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        depth = 2 if cfg.train.pipeline == "overlapped" else 1  # batches in flight at once
        self.services.closed = False
        worker = ThreadPoolExecutor(1, thread_name_prefix="ovip-pipeline") if depth > 1 else None
        sent: dict[int, Future] = {}
        self._prepare()
        log.info(
            "run folder %s: %d prompts from step %d, k=%d samples each, %d experiences per step%s",
            self.run_dir,
            self.total_prompts - self.cursor,
            self.step,
            cfg.rollout.k,
            cfg.train.batch_size,
            f", rank {self.ranks.rank} of {self.ranks.world}" if self.ranks.world > 1 else "",
        )
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
                    while self._held() >= self.local_batch and self._may_update():
                        last = self.update()
                        loss = "nan" if last["loss"] is None else f"{last['loss']:.3f}"
                        bar.set_postfix(step=self.step, loss=loss, buffer=len(self.buffer))
                    self._end_phase()
                    for batch in self.inflight:  # restored from a checkpoint: send them again, in order
                        if worker is not None and batch.start not in sent:
                            sent[batch.start] = worker.submit(self.feedback, batch)
                    while len(self.inflight) < depth and self._next_start() < self.total_prompts:
                        batch = self.sample_batch(self._next_start())
                        self.inflight.append(batch)
                        if worker is not None:
                            sent[batch.start] = worker.submit(self.feedback, batch)
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
                self.trackers.close()
            self.save(final=True)
            everyone = self.ranks.gather((len(self.buffer), self.counters, self.sync_total))
            summary = {
                "step": self.step,
                "prompts": self.cursor,
                "buffer_left": sum(e[0] for e in everyone),
                "data/skipped": self.data_skipped,
                **Counters.combine([e[1] for e in everyone]).metrics(),
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
                message = self.why_no_updates()
                log.error("%s", message, extra={"console": False})
                raise NoUpdates(message)
        return summary

    def sample_batch(self, start: int) -> SampledBatch:
        """Sampling (Eq. 1): k responses for each prompt of this rank's share of the batch at `start`, in one
        generate call (through the unwrapped policy)."""
        cfg, policy = self.cfg, self.policy
        n = min(cfg.rollout.prompts_per_batch, self.total_prompts - start)
        examples = [self.examples[i % len(self.examples)] for i in self.ranks.share(start, n)]
        images = [load_image(e, cfg.train.max_image_pixels, policy.processor) for e in examples]
        if not self.method.rollout:  # sft trains on the reference answers: nothing to sample
            return self._rebuild(start, self.step, [[] for _ in examples], examples, images, size=n)
        # Each rank draws its own noise; rank 0 keeps the single-process seed.
        seed = cfg.train.seed * 1_000_003 + start + (self.ranks.rank << 32)
        with self.timers("sampling"), self.ranks.full_model(self.train_model, policy.model) as model:
            groups = (
                []
                if not examples
                else sample(
                    model,
                    policy.processor,
                    images,
                    [e.query for e in examples],
                    k=cfg.rollout.k,
                    temperature=cfg.rollout.temperature,
                    top_p=cfg.rollout.top_p,
                    max_new_tokens=cfg.rollout.max_new_tokens,
                    seed=seed,
                )
            )
        return self._rebuild(start, self.step, groups, examples, images, size=n)

    def feedback(self, batch: SampledBatch) -> Feedback:
        """Scoring, pairs, description and negative images of a batch (no model, no counter: may run in a
        worker thread)."""
        if not self.method.rollout:  # sft: each prompt's reference answer is its experience
            return Feedback(
                [[] for _ in batch.rollouts],
                [1] * len(batch.rollouts),
                [
                    Candidate(
                        prompt=i,
                        chosen=r.example.reference,
                        rejected="",
                        chosen_score=10.0,
                        rejected_score=0.0,
                        fallback=True,
                        negative_seed=0,
                    )
                    for i, r in enumerate(batch.rollouts)
                ],
            )
        return run_services(
            self.services,
            batch,
            self.rule,
            self.cfg.pairs.rule,
            self.cfg.negatives.seed,
            streamed=self.cfg.train.pipeline != "sequential",
            negatives=self.method.negatives,
            objective=self.method.objective,
        )

    def absorb(self, batch: SampledBatch, feedback: Feedback) -> list[Experience]:
        """Check the error budget, count a batch's feedback, and put its experiences, with their reference
        log-probs, into the buffer. Runs in the main thread, in batch order."""
        for stage, seconds in feedback.seconds.items():
            self.timers.add(stage, seconds)
        self._check_budget(batch, feedback)
        self._count(batch, feedback)
        experiences = self.to_experiences(batch, feedback)
        if self.method.objective == "pairs":
            self.reference_logps(experiences)
        if experiences:
            self.buffer.add(experiences)
            self.counters.experiences += len(experiences)
        self._log_experiences(experiences)
        return experiences

    def to_experiences(self, batch: SampledBatch, feedback: Feedback) -> list[Experience]:
        """The pairs whose description and negative image came back (every pair, for a method without
        negatives; every judged sample for GRPO; the reference for SFT), as buffer records (Appendix F)."""
        out = []
        for cand in feedback.candidates:
            if self.method.negatives and not (
                cand.description.ok and cand.negative is not None and cand.negative.ok
            ):
                continue
            rollout = batch.rollouts[cand.prompt]
            positive_path = rollout.example.image_path or self.store.put(rollout.image)
            self._images[positive_path] = rollout.image
            negative_path = ""
            if self.method.negatives:
                negative_path = self.store.put(cand.negative.image)
                self._images[negative_path] = cand.negative.image
            out.append(
                Experience(
                    example_id=rollout.example.id,
                    query=rollout.example.query,
                    image_path=positive_path,
                    negative_image_path=negative_path,
                    chosen=cand.chosen,
                    rejected=cand.rejected,
                    chosen_score=cand.chosen_score,
                    rejected_score=cand.rejected_score,
                    fallback=cand.fallback,
                    description=cand.description.text if cand.description else "",
                    reference_logps={},
                    step=batch.step,
                    negative_seed=cand.negative_seed,
                    advantage=cand.advantage,
                )
            )
        return out

    def reference_logps(self, experiences: list[Experience]) -> None:
        """log pi_ref of every scored condition, once, as an experience enters the buffer: the reference never
        changes within a run (the policy with its adapters disabled)."""
        cfg, policy = self.cfg, self.policy
        with self.ranks.full_model(self.train_model, policy.model):  # every rank, its share empty or not
            if not experiences:
                return
            with self.timers("forward"), policy.reference() as ref:
                logps = score_conditions(
                    ref,
                    policy.processor,
                    experiences,
                    self.names,
                    self._images,
                    cfg.model.no_image,
                    cfg.train.micro_batch_size,
                    cfg.model.max_length,
                )
        for i, exp in enumerate(experiences):
            exp.reference_logps = logps.as_floats(i)

    def update(self) -> dict:
        """One optimizer step on N experiences: N / world drawn from each rank's buffer, in micro-batches whose
        gradients the engine reduces over the ranks on the last one (Accelerator.backward)."""
        cfg, policy = self.cfg, self.policy
        self._prepare()
        batch = self.buffer.sample(self.local_batch)
        lr = learning_rate(cfg, self._progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        policy.model.train()
        sums: dict[str, float] = {}
        total = 0.0
        size = cfg.train.micro_batch_size
        starts = range(0, len(batch), size)
        for start in starts:
            part = batch[start : start + size]
            self._ensure_images(part)
            with self.ranks.accumulating(self.train_model, last=start == starts[-1]):
                with self.timers("forward"):
                    terms = self.loss_terms(part)
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
        live = {p for e in self.buffer.items for p in (e.image_path, e.negative_image_path)}
        self._images = {p: im for p, im in self._images.items() if p in live}  # bounded by the buffer
        window = self._window(sums)
        metrics = {
            "step": self.step,
            "loss": total,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "prompts": self.cursor,
            "buffer/size": window.pop("buffer/size"),
            **window,
            "time/wall": time.time(),
        }
        if not finite:
            log.warning(
                "step %d: non-finite loss or gradient (loss %s, grad_norm %s); update skipped",
                self.step,
                total,
                float(grad_norm),
            )
        metrics = {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()}
        self.last_losses = {k: v for k, v in metrics.items() if k.startswith("loss")}
        if self.ranks.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            self.trackers.log(metrics, self.step)
        self.window_start = self.counters.copy()
        if c.nonfinite_streak >= cfg.train.max_nonfinite_steps:
            path = self.save()
            self.trackers.close()
            raise NonFiniteTraining(
                f"{c.nonfinite_streak} updates in a row had a non-finite loss or gradient "
                f"(train.max_nonfinite_steps={cfg.train.max_nonfinite_steps}); stopped at step {self.step} with "
                f"the weights of the last finite update saved in {path}. Lower train.lr or check the data"
            )
        if cfg.train.save_every and self.step % cfg.train.save_every == 0:
            self.save()
        return metrics

    def _window(self, sums: dict[str, float]) -> dict:
        """The metrics of the window since the previous line, over all ranks: the loss terms' means (equal
        shares), the counters summed, the stage times averaged, and the wait for the slowest rank."""
        mine = (
            sums,
            len(self.buffer),
            self.counters,
            self.window_start,
            self.timers.metrics(),
            self.sync_seconds,
        )
        self.sync_seconds = 0.0
        if self.ranks.world == 1:
            return {
                "buffer/size": len(self.buffer),
                **sums,
                **self.counters.metrics(since=self.window_start),
                **mine[4],
            }
        everyone = self.ranks.gather(mine)
        mean = lambda dicts: {k: sum(d[k] for d in dicts) / len(dicts) for k in dicts[0]}  # noqa: E731
        waits = [e[5] for e in everyone]
        now, since = Counters.combine([e[2] for e in everyone]), Counters.combine([e[3] for e in everyone])
        return {
            "buffer/size": sum(e[1] for e in everyone),
            **mean([e[0] for e in everyone]),
            **now.metrics(since=since),
            **mean([e[4] for e in everyone]),
            "time/sync_wait": round(sum(waits) / len(waits), 4),
            "time/sync_wait_max": round(max(waits), 4),
        }

    def loss_terms(self, part: list[Experience]) -> LossTerms:
        """The method's loss of a micro-batch: [E] per-example losses (a GRPO micro-batch: its token mean,
        spread over its E samples) and the metrics of its terms."""
        cfg, policy = self.cfg, self.policy
        if self.method.objective == "grpo":
            loss_sum, metrics = grpo_terms(
                policy,
                part,
                self._images,
                cfg.loss,
                cfg.model.no_image,
                cfg.model.max_length,
                model=self.train_model,
            )
            tokens = metrics.pop("tokens")
            return LossTerms((loss_sum / max(tokens, 1.0)).expand(len(part)), metrics)
        logps = score_conditions(
            self.train_model,
            policy.processor,
            part,
            self.names,
            self._images,
            cfg.model.no_image,
            None,
            cfg.model.max_length,
        )
        if self.method.objective == "sft":
            return sft_terms(logps)
        return ovip_loss(logps, Logps.of_references(part, self.names, policy.device), cfg.loss)

    # ----- the method's schedule -----------------------------------------------------------------------------
    def _next_phase_end(self, cursor: int) -> int:
        """Where the training phase that starts at `cursor` ends: the whole data (offline), the next
        1/rounds of it (iterative), or here (online: train whenever |B| >= N)."""
        total = len(self.examples) * self.cfg.train.epochs
        if self.method.schedule == "offline":
            return total
        if self.method.schedule == "rounds":
            size = math.ceil(total / self.cfg.train.rounds)
            return min(total, (cursor // size + 1) * size)
        return cursor

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
        if self.method.schedule == "online":
            return True
        if self.cursor < self.phase_end:
            return False
        if self.phase is None:  # the phase starts draining: it will make min_r |B_r| // (N / world) updates
            self.phase = [self.phase_start, self._held() // self.local_batch, 0]
        return True

    def _end_phase(self) -> None:
        if self.method.schedule != "online" and self.cursor >= self.phase_end:
            self.phase = None
            self.phase_start, self.phase_end = self.cursor, self._next_phase_end(self.cursor)

    def _progress(self) -> float:
        """The learning-rate schedule's position: the data cursor online; within an offline or iterative phase,
        its start plus the share of the phase's updates made, over its prompts."""
        total = max(1, self.total_prompts)
        if self.phase is None:
            return self.cursor / total
        start, n, done = self.phase
        self.phase[2] += 1
        return (start + (self.phase_end - start) * done / max(1, n)) / total

    # ----- helpers -------------------------------------------------------------------------------------------
    def save(self, final: bool = False) -> Path:
        return checkpoint.save(
            self.run_dir,
            self.policy,
            self.optimizer,
            self.buffer,
            self.state(),
            keep=self.cfg.train.keep_checkpoints,
            final=final,
            ranks=self.ranks,
            train_model=self.train_model,
        )

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

    def why_no_updates(self) -> str:
        c, n = Counters.combine(self.ranks.gather(self.counters)), self.cfg.train.batch_size
        first = "; ".join(list(self.errors.first.values())[:3])
        return (
            f"no optimizer step: {c.prompts} prompts gave {c.experiences} experiences, fewer than "
            f"train.batch_size {n} (judge failures {c.judge_failures}/{c.judged - c.judge_cache_hits} calls, "
            f"prompts without a pair {c.prompts_without_pair}, description failures "
            f"{c.description_failures}/{c.descriptions}, negative-image failures {c.negative_failures}/{c.negatives})"
            + (f"; first errors: {first}" if first else "")
            + f"; details in {self.run_dir / 'train.log'}"
        )

    def _next_start(self) -> int:
        return self.inflight[-1].end if self.inflight else self.cursor

    def _rebuild(
        self,
        start: int,
        step: int,
        groups: list[list[str]],
        examples=None,
        images=None,
        size: int | None = None,
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

    def _count(self, batch: SampledBatch, feedback: Feedback) -> None:
        c = self.counters
        for rollout, judgments, n_pairs in zip(
            batch.rollouts, feedback.judgments, feedback.pairs_per_prompt, strict=True
        ):
            scores = [j.score for j in judgments]
            c.prompts += 1
            c.responses += rollout.sampled
            c.distinct_responses += len(rollout.responses)
            c.duplicate_prompts += len(rollout.responses) < min_distinct(rollout.sampled)
            c.judged += len(judgments)
            c.judge_cache_hits += sum(j.cached for j in judgments)
            c.judge_failures += sum(s is None for s in scores)
            c.score_sum += sum(s for s in scores if s is not None)
            c.prompts_without_pair += not n_pairs
        staleness = self.step - batch.step
        c.batches += 1
        c.staleness_sum += staleness
        c.staleness_max = max(c.staleness_max, staleness)
        for cand in feedback.candidates:
            if not self.method.negatives:  # a pair (or GRPO sample, or SFT answer) with nothing to draw
                c.pairs += 1
                c.fallback_pairs += cand.fallback and self.method.rollout
                continue
            c.descriptions += 1
            c.description_failures += not cand.description.ok
            if cand.description.ok:
                c.negatives += 1
                c.negative_failures += not cand.negative.ok
                c.pairs += cand.negative.ok
                c.fallback_pairs += cand.negative.ok and cand.fallback

    def _check_budget(self, batch: SampledBatch, feedback: Feedback) -> None:
        """Log every failed call of the batch and add all its calls to the error budget; past the budget, save
        a checkpoint as if this batch had not come back (a resume sends it again) and stop."""
        for judgments in feedback.judgments:
            for j in judgments:
                if j.cached:  # no call was made
                    continue
                self.budget.record("judge", not j.ok)
                if not j.ok:
                    self.errors.note("judge", j.error)
        for cand in feedback.candidates if self.method.negatives else ():
            self.budget.record("describer", not cand.description.ok)
            if not cand.description.ok:
                self.errors.note("describer", cand.description.error)
            elif cand.negative is not None:
                self.budget.record("negatives", not cand.negative.ok)
                if not cand.negative.ok:
                    self.errors.note("negatives", cand.negative.error)
        exceeded = self.budget.exceeded()
        if self.ranks.world > 1:  # one rank's stop is every rank's, each with its checkpoint
            stops = [
                f"rank {rank}: {text}"
                for rank, text in self.ranks.gather((self.ranks.rank, exceeded))
                if text
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

    def _ensure_images(self, experiences: list[Experience]) -> None:
        """Images of buffer items read again (after a resume): as `collect` loaded them, from the store of this
        run folder when the folder has moved since."""
        for e in experiences:
            for path in (e.image_path, e.negative_image_path):
                if path and path not in self._images:  # "": a method without negative images
                    found = path if Path(path).exists() else str(self.store.root / Path(path).name)
                    record = Example(id=path, query="", reference="", image_path=found)
                    self._images[path] = load_image(
                        record, self.cfg.train.max_image_pixels, self.policy.processor
                    )

    def _log_experiences(self, experiences: list[Experience]) -> None:
        """Rank 0 appends every rank's experiences of the batch, rank by rank (a collective with N ranks)."""
        rows = [asdict(e) for e in experiences]
        if self.ranks.world > 1:
            rows = [row for part in self.ranks.gather(rows) for row in part]
        if rows and self.ranks.main:
            with open(self.run_dir / "experiences.jsonl", "a") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")


def log_name(rank: int) -> str:
    """The run log of a rank: train.log for rank 0, train-rank1.log ... for the others."""
    return "train.log" if rank == 0 else f"train-rank{rank}.log"
