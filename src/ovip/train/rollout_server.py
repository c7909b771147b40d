"""Sampling on policy servers beside the trainer (`rollout.engine: server`): `ovip serve policy` or `vllm serve`.

The paper samples with dedicated samplers that the trainer feeds with new weights (Appendix B.2, "Software
infrastructure"; Appendix D: four samplers); TRL (`use_vllm`, server mode), verl and OpenRLHF do the same with
an inference engine. Here the servers speak vLLM's OpenAI-compatible API (`ovip.services.policy_client`):

- sampling: each prompt of this rank's share of a batch is one chat-completions request (`n` = k, the
  prompt's seed `prompt_seed(train.seed, position)` exactly as the local sampler derives it), all in flight
  at once and spread over the replicas (`rollout.base_url`, comma-separated; failover when one dies), sent
  from a thread of the sampler's own, so the loop's thread never generates. The answers come back as text;
  the loop tokenizes them with its own processor as any response. A prompt whose request failed (deadline,
  retries, replicas exhausted) has no samples and is a counted failure of the `rollout` service (error
  budget, `ovip.train.counters`); a reply from another adapter than asked stops the run.
- weight sync: every `rollout.sync_every` optimizer steps, and at every checkpoint (so that a resume samples
  from the adapter the run had pushed), rank 0 saves the adapter (PEFT `save_pretrained` of the unwrapped
  model; a sharded engine's gathered state) to RUN_DIR/rollout/step-N/ and loads it on every replica as
  `ovip-step-N` (vLLM's runtime LoRA endpoint), after unloading the adapters no batch in flight uses; the
  batches sampled next ask for that name. Before the first batch of a run, or of a resume, the adapters this
  run's name left on the servers are unloaded and the current weights are pushed. The servers read the path
  themselves: they must see RUN_DIR at the same place (one machine or a shared filesystem). A replica that
  answers a load with an error (a path outside its adapter root, an adapter it cannot load) stops the run
  with that error; one that does not answer is left out of sampling until a later push reaches it.
- stale weights: the first batch sampled after each push carries the server's log-probs of its sampled tokens
  (`logprobs`, vLLM's `return_tokens_as_token_ids`); before the next optimizer step changes the weights, the
  trainer recomputes the log-probs of `rollout.logprob_check` of those samples' tokens with the pushed weights
  (`batch_token_logps`) and logs their mean absolute difference per token as `rollout/logprob_gap`. Above
  `rollout.max_logprob_gap` the run stops after writing that metrics line (`StaleRollout`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ovip.config import Config
from ovip.config.sections import LOGPROB_GAP
from ovip.policy.batch import collate_tokens
from ovip.policy.logprobs import batch_token_logps
from ovip.records import Example
from ovip.services.client import CallLimits, split_urls
from ovip.services.policy_client import PolicyClient, unreachable
from ovip.train.counters import ServiceFailure
from ovip.train.methods import objective_of
from ovip.train.rollout import BatchPrompts, Sampling
from ovip.train.stages import SampledBatch

log = logging.getLogger(__name__)

PREFIX = "ovip-step-"  # the servers' names of this run's adapters: ovip-step-N holds the weights after step N


class StaleRollout(ServiceFailure):
    """The policy servers sample with other weights than the trainer pushed; the run stopped."""


class ServerSampler:
    pushes_adapter = True  # the servers sample with the trainer's LoRA adapter: model.finetune lora

    def __init__(self, cfg: Config, policy, examples: list[Example], ranks, timers, run_dir):
        self.cfg, self.policy, self.ranks, self.timers = cfg, policy, ranks, timers
        self.run_dir = Path(run_dir)
        self.prompts = BatchPrompts(cfg, policy, examples, ranks)
        self.rebuild = self.prompts.rebuild
        self.judged = objective_of(cfg).judged  # SFT samples nothing: no server is called
        r = cfg.rollout
        self.limits = CallLimits(timeout=r.timeout, max_retries=r.max_retries, max_reply_bytes=64_000_000)
        self.urls = split_urls(r.base_url)
        self.live = list(self.urls)  # the replicas that hold the newest adapter
        self._clients: dict[tuple, PolicyClient] = {}
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="ovip-rollout")
        self.adapter, self.adapter_step = None, 0
        self.check_due = False  # the next batch sampled is the first one from a newly pushed adapter
        self.check: Sampling | None = None  # that batch, until the next optimizer step
        self.served: dict[int, list] = {}  # batch start -> (image, query, token ids, server log-probs)
        self.gaps: list[tuple[float, int]] = []  # this window's checks: (sum of |differences|, tokens)
        self.stale: str | None = None

    # ----- weights ---------------------------------------------------------------------------------------
    def start(self, step: int, train_model) -> None:
        """Push the current weights before the first batch of a run or of a resume (what this run's names left
        on the servers, a killed run's adapters, are unloaded by the push)."""
        if not self.judged:
            return
        if self.ranks.main:
            shutil.rmtree(self.run_dir / "rollout", ignore_errors=True)
        self.push(step, train_model, [])

    def synced(self, step: int, train_model, inflight: list[Sampling]) -> None:
        """After optimizer step `step`: stop if the check before it failed; push every `sync_every` steps and
        at every checkpoint."""
        if self.stale:
            raise StaleRollout(self.stale)
        save_every, sync_every = self.cfg.train.save_every, self.cfg.rollout.sync_every
        if self.judged and (step % sync_every == 0 or (save_every and step % save_every == 0)):
            self.push(step, train_model, inflight)

    def push(self, step: int, train_model, inflight: list[Sampling]) -> None:
        """Rank 0 saves the weights of `step` and loads them on every replica, once every rank is here (the
        gather); every rank then samples with that name. A replica that refuses the load stops the run."""
        with self.timers("weight_sync"):
            full = self.ranks.adapter_state(train_model)  # a collective when the engine shards the weights
            outcome = None
            if self.ranks.main:
                in_use = {f"{PREFIX}{flight.step}" for flight in inflight}
                outcome = self._push(step, full, in_use)
            name, live, refused = self.ranks.gather(outcome)[0] if self.ranks.world > 1 else outcome
        if refused:
            raise ServiceFailure(refused)
        if live != self.live:
            log.warning("rollout: sampling on %s (%d of %d replicas hold %s)", ", ".join(live), len(live),
                        len(self.urls), name)  # fmt: skip
        self.adapter, self.adapter_step, self.live = name, step, live
        self.check_due = self.cfg.rollout.logprob_check > 0

    def _push(self, step: int, full: dict | None, in_use: set[str]) -> tuple[str, list[str], str | None]:
        """Save the adapter of `step`, then on each replica: unload the `ovip-step-*` adapters no batch in flight
        uses (what it lists: also what a killed run or a replica that was down left), load the new one. Returns
        (its name, the replicas that loaded it, the error of one that refused)."""
        root, name = self.run_dir / "rollout", f"{PREFIX}{step}"
        folder, tmp = root / f"step-{step}", root / f".step-{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with warnings.catch_warnings():  # transformers' deprecation notes, once per push otherwise
            warnings.simplefilter("ignore", FutureWarning)
            self.policy.model.save_pretrained(tmp, **({} if full is None else {"state_dict": full}))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # a server never reads a half-written adapter
        live, down = [], []
        for url in self.urls:
            client = self.client(
                [url], probe=url not in self.live
            )  # one short attempt to a replica that was down
            held = client.models()[0]
            errors = [held] if isinstance(held, str) else []
            for old in [] if errors else [n for n in held if n.startswith(PREFIX) and n not in in_use]:
                client.unload_adapter(old)  # before the load: vLLM holds --max-loras adapters
            errors = errors or client.load_adapter(name, str(folder))
            if errors and not unreachable(errors[0]):
                return name, [], (
                    f"rollout: {errors[0]} (the server reads the adapter from its own filesystem: RUN_DIR "
                    "must be there at the same path, under its --adapter-root)"
                )  # fmt: skip
            (down if errors else live).append(errors[0] if errors else url)
        for error in down:
            log.warning("rollout: %s; sampling goes to the other replicas until a push reaches it", error)
        for other in root.glob("step-*"):  # the adapters of batches no longer in flight
            if other != folder and f"{PREFIX}{other.name.removeprefix('step-')}" not in in_use:
                shutil.rmtree(other, ignore_errors=True)
        return name, live or list(self.urls), None  # none answers: sampling fails, counted (error budget)

    # ----- sampling --------------------------------------------------------------------------------------
    def sample(self, start: int, step: int, train_model, judged: bool = True) -> Sampling:
        """This rank's share of the batch at `start`, sampled on the servers by the newest adapter pushed
        (its step is the batch's), in the sampler's thread."""
        n = self.prompts.size(start)
        examples, images = self.prompts.of(start, n)
        if not judged:
            return Sampling.done(self.rebuild(start, step, [[] for _ in examples], n, examples, images))
        keep = self.cfg.rollout.logprob_check if self.check_due else 0
        # the adapter and the replicas that hold it, as they are now: a push may come before the thread sends
        args = (
            start,
            n,
            examples,
            images,
            self.prompts.seeds(start, n),
            self.adapter,
            self.adapter_step,
            keep,
        )
        args += (self.client(self.live),)
        sampling = Sampling(start, start + n, self.adapter_step, self.thread.submit(self._sample, *args))
        if keep:
            self.check, self.check_due = sampling, False
        return sampling

    def _sample(self, start, n, examples, images, seeds, adapter, step, keep, client) -> SampledBatch:
        r, begin = self.cfg.rollout, time.perf_counter()
        replies = []
        if examples:
            replies = client.sample(
                images, [e.query for e in examples], k=r.k, temperature=r.temperature, top_p=r.top_p,
                max_new_tokens=r.max_new_tokens, seeds=seeds, adapter=adapter,
            )  # fmt: skip
        groups = [[s.text for s in reply.samples] for reply in replies]
        errors = [reply.error for reply in replies]
        batch = self.rebuild(start, step, groups, n, examples, images, errors)
        batch.seconds = time.perf_counter() - begin
        wrong = next((reply for reply in replies if reply.model not in (None, adapter)), None)
        if wrong is not None:
            batch.stale = (
                f"rollout: {wrong.error}: the policy server did not load the pushed adapter (it samples the base "
                "model or an old adapter); the run's samples would not come from its policy"
            )
        served = [
            (image, e.query, s.token_ids, s.logprobs)
            for image, e, reply in zip(images, examples, replies, strict=True)
            for s in reply.samples
            if s.token_ids and s.logprobs
        ]
        if keep:
            self.served[start] = served[:keep]
        return batch

    # ----- the check of the pushed weights ---------------------------------------------------------------
    def verify(self, train_model) -> None:
        """Before an optimizer step: the gap between the server's and the policy's log-probs of the samples
        kept from the first batch of the newest adapter, which the policy's weights still are. Every rank
        computes its share's, and they are summed (a collective)."""
        sampling, self.check, self.check_due = self.check, None, False
        if sampling is None:
            return
        with self.timers("service_wait"):
            sampling.result()
        served = self.served.pop(sampling.start, [])
        total, tokens = self._gap(served, train_model)
        if self.ranks.world > 1:
            parts = self.ranks.gather((total, tokens))
            total, tokens = sum(p[0] for p in parts), sum(p[1] for p in parts)
        if not tokens:
            return
        self.gaps.append((total, tokens))
        limit = self.cfg.rollout.max_logprob_gap
        gap, limit = total / tokens, LOGPROB_GAP[self.cfg.model.dtype] if limit is None else limit
        if gap > limit:
            self.stale = (
                f"rollout/logprob_gap {gap:.4g} > rollout.max_logprob_gap {limit:g}: the policy servers' "
                f"log-probs of their samples from {self.adapter} are not the trainer's ({tokens} tokens); the "
                "server samples the base model or an old adapter, or builds prompts with another chat template, "
                "or runs another dtype"
            )

    def _gap(self, served: list, train_model) -> tuple[float, int]:
        """(sum over the tokens of |server log-prob - policy log-prob|, tokens) of `served`."""
        model = self.policy.model
        image_token = getattr(
            model.config, "image_token_id", getattr(model.config, "image_token_index", None)
        )
        served = [s for s in served if image_token not in s[2]]  # a sampled image token is no text to score
        with self.ranks.full_model(train_model, model) as full:
            if not served:
                return 0.0, 0
            images, queries, ids, theirs = zip(*served, strict=True)
            batch = collate_tokens(self.policy.processor, list(images), list(queries), [list(i) for i in ids])
            with self.timers("forward"), torch.no_grad():
                ours, mask = batch_token_logps(full, batch.to(next(full.parameters()).device))
        mine = ours[mask].cpu()
        theirs = torch.tensor([x for row in theirs for x in row], dtype=mine.dtype)
        return float((mine - theirs).abs().sum()), len(theirs)

    def metrics(self) -> dict:
        total, tokens = sum(g[0] for g in self.gaps), sum(g[1] for g in self.gaps)
        self.gaps = []
        return {"rollout/logprob_gap": total / tokens if tokens else None}

    # ----- clients -----------------------------------------------------------------------------------------
    def client(self, urls: list[str], probe: bool = False) -> PolicyClient:
        """A client of the replicas `urls` (reused); `probe`: one attempt per call, within
        `train.preflight_timeout` (a replica that was down costs that much per push at most)."""
        key = (tuple(urls), probe)
        if key not in self._clients:
            r, limits = self.cfg.rollout, self.limits
            if probe:
                limits = CallLimits(
                    min(r.timeout, self.cfg.train.preflight_timeout), 0, max_reply_bytes=1_000_000
                )
            self._clients[key] = PolicyClient(list(urls), r.api_key_env, limits, r.max_concurrency)
        return self._clients[key]

    def close(self) -> None:
        self.thread.shutdown(wait=False, cancel_futures=True)
        for client in self._clients.values():
            client.close()
        self._clients = {}
