"""What a method trains on and with which loss: one `Objective` per kind of experience.

An objective answers the loop's three questions about a method, and nothing else:

    select(prompt, rollout, judgments) -> candidates   what one judged prompt becomes (Algorithm 1's pairs,
                                                       GRPO's scored samples, SFT's reference answer)
    experience(candidate, ...)          -> Experience  the buffer record of a candidate (Appendix F)
    loss(forward, experiences)          -> LossTerms   the per-example loss of a micro-batch and its metrics

plus three facts: whether the k samples are judged (`judged`), whether each pair gets a negative image
(`negatives`), and which conditions' reference log-probs are stored as an experience enters the buffer
(`reference_conditions`; the reference never changes within a run, so they are computed once).

| objective | experiences         | loss                                                                  |
| --------- | ------------------- | --------------------------------------------------------------------- |
| Pairs     | Eq. 2 pairs         | Eq. 6: L_Text (Eq. 4) + L_Image (Eq. 5 or a B.1 variant) + auxiliaries |
| GRPO      | judged samples      | clipped ratio with a k3 KL to the reference, over tokens (Shao et al.) |
| SFT       | the reference A*    | per-token negative log-likelihood                                     |

The losses themselves are the pure functions of `ovip.losses`; the scoring of a pair's conditions is
`ovip.train.conditions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image

from ovip import losses
from ovip.config import Config, LossConfig
from ovip.pairs import PairRule
from ovip.policy.batch import Condition, collate
from ovip.policy.logprobs import batch_token_logps, sequence_logps
from ovip.records import AnswerExperience, Experience, Judgment, PairExperience, SampleExperience
from ovip.train.conditions import Logps, needed_conditions, score_conditions
from ovip.train.image_losses import IMAGE_LOSSES
from ovip.train.stages import (
    AnswerCandidate,
    Candidate,
    PairCandidate,
    Rollout,
    SampleCandidate,
    pairs_of,
)


@dataclass
class LossTerms:
    """Per-example loss [E] and the metrics of its terms (names as logged: loss/text, loss/image, ...)."""

    total: torch.Tensor
    metrics: dict[str, float]


@dataclass
class Forward:
    """What a loss needs to run the policy on a micro-batch: the module that trains (the engine's wrapper with
    several ranks), the policy (processor, reference, device), the loaded images by stored path, and how
    sequences are built (`model.no_image`, `model.max_length`)."""

    model: torch.nn.Module
    policy: object  # ovip.policy.model.Policy
    images: dict[str, Image.Image]
    no_image: str
    max_length: int | None
    mean_over_ranks: Callable[[float], float] = float  # a statistic of the step over every rank's share


class Objective(Protocol):
    judged: bool
    negatives: bool
    reference_conditions: tuple[str, ...]

    def begin_step(self, forward: Forward, batch: list[Experience]) -> None:
        """What the step's loss needs from its whole batch before its micro-batches (a no-op for most)."""

    def select(self, index: int, rollout: Rollout, judgments: list[Judgment]) -> list[Candidate]: ...

    def experience(
        self, candidate: Candidate, rollout: Rollout, image_path: str, negative_path: str, step: int
    ) -> Experience: ...

    def loss(self, forward: Forward, part: list[Experience]) -> LossTerms: ...


class Pairs:
    """OViP and the DPO family: Eq. 2 pairs (A* fallback), with a negative image each when `negatives`; the
    loss is Eq. 6 over the conditions the configured loss reads (`ovip.train.conditions`)."""

    judged = True

    def __init__(self, cfg: Config, negatives: bool):
        self.negatives, self.cfg = negatives, cfg.loss
        self.rule = PairRule(
            cfg.pairs.delta, cfg.pairs.tau_pos, cfg.pairs.tau_neg, cfg.pairs.reference_fallback
        )
        self.variant, self.seed = cfg.pairs.rule, cfg.negatives.seed
        self.reference_conditions = needed_conditions(cfg.loss)

    def begin_step(self, forward: Forward, batch: list) -> None:
        pass

    def select(self, index: int, rollout: Rollout, judgments: list[Judgment]) -> list[PairCandidate]:
        return pairs_of(index, rollout, judgments, self.rule, self.variant, self.seed)

    def experience(
        self, candidate: PairCandidate, rollout: Rollout, image_path: str, negative_path: str, step: int
    ) -> PairExperience:
        return PairExperience(
            example_id=rollout.example.id,
            query=rollout.example.query,
            image_path=image_path,
            negative_image_path=negative_path,
            chosen=candidate.chosen,
            rejected=candidate.rejected,
            chosen_score=candidate.chosen_score,
            rejected_score=candidate.rejected_score,
            fallback=candidate.fallback,
            description=candidate.description.text if candidate.description else "",
            reference_logps={},
            step=step,
            negative_seed=candidate.negative_seed,
        )

    def loss(self, forward: Forward, part: list[PairExperience]) -> LossTerms:
        names = self.reference_conditions
        policy = forward.policy
        logps = score_conditions(
            forward.model,
            policy.processor,
            part,
            names,
            forward.images,
            forward.no_image,
            None,
            forward.max_length,
        )
        return ovip_loss(logps, Logps.of_references(part, names, policy.device), self.cfg)


def ovip_loss(p: Logps, r: Logps, cfg: LossConfig) -> LossTerms:
    """Eq. 6 = text_weight * L_Text (Eq. 4) + image_weight * L_Image (Eq. 5 or a B.1 variant) + auxiliaries.
    `p` are the policy's log-probs, `r` the reference's."""
    text = losses.text_loss(p.chosen, r.chosen, p.rejected, r.rejected, cfg.beta)
    image = IMAGE_LOSSES[cfg.image].loss(p, r, cfg)
    total = cfg.text_weight * text + cfg.image_weight * image
    metrics = {"loss/text": float(text.detach().mean()), "loss/image": float(image.detach().mean())}
    if cfg.anchor_weight:
        anchor = losses.anchor_loss(p.chosen, r.chosen, cfg.beta)
        total = total + cfg.anchor_weight * anchor
        metrics["loss/anchor"] = float(anchor.detach().mean())
    if cfg.bi_anchor_weight:
        bi = losses.bi_anchor_loss(p.chosen, r.chosen, p.rejected_none, r.rejected_none, cfg.beta)
        total = total + cfg.bi_anchor_weight * bi
        metrics["loss/bi_anchor"] = float(bi.detach().mean())
    if cfg.sft_weight:
        sft = losses.sft_loss(p.chosen, p.chosen_tokens)
        total = total + cfg.sft_weight * sft
        metrics["loss/sft"] = float(sft.detach().mean())
    metrics.update(losses.Rewards.of(p.chosen, r.chosen, p.rejected, r.rejected, cfg.beta).metrics())
    if p.chosen_neg is not None:
        margin = cfg.beta1 * ((p.chosen - r.chosen) - (p.chosen_neg - r.chosen_neg))
        metrics["rewards/image_margins"] = float(margin.detach().mean())
    metrics["logps/chosen"] = float(p.chosen.detach().mean())
    metrics["logps/rejected"] = float(p.rejected.detach().mean())
    return LossTerms(total, metrics)


class SFT:
    """Supervised fine-tuning on the reference answers A* (the `sft` baseline): nothing is sampled or judged;
    the loss is the per-example mean token negative log-likelihood."""

    judged, negatives, reference_conditions = False, False, ()

    def __init__(self, cfg: Config):
        pass

    def begin_step(self, forward: Forward, batch: list) -> None:
        pass

    def select(self, index: int, rollout: Rollout, judgments: list[Judgment]) -> list[AnswerCandidate]:
        return [AnswerCandidate(index, rollout.example.reference)]

    def experience(
        self, candidate: AnswerCandidate, rollout: Rollout, image_path: str, negative_path: str, step: int
    ) -> AnswerExperience:
        example = rollout.example
        return AnswerExperience(example.id, example.query, image_path, candidate.response, step)

    def loss(self, forward: Forward, part: list[AnswerExperience]) -> LossTerms:
        conds = [Condition(forward.images[e.image_path], e.query, e.response) for e in part]
        out = sequence_logps(
            forward.model,
            forward.policy.processor,
            conds,
            no_image=forward.no_image,
            max_length=forward.max_length,
        )
        loss = losses.sft_loss(out.logps, out.token_counts)
        metrics = {"loss/sft": float(loss.detach().mean()), "logps/chosen": float(out.logps.detach().mean())}
        return LossTerms(loss, metrics)


class GRPO:
    """GRPO (Shao et al., 2024, DeepSeekMath §4.1) over the judge's scores, as TRL's `GRPOTrainer` defines it:
    the group is all k samples of a prompt, duplicates included (a response sampled twice is judged once and
    keeps its score, but counts once per sample in the group's mean and standard deviation and is an experience
    per sample); advantage = (r - mean) / (std + 1e-4) with the unbiased std (`losses.group_advantages`). A
    group whose scores are all equal has advantage 0 everywhere and stays in the batch (its KL term still
    trains), as in TRL. A sample whose judgment failed has no reward and is left out (TRL would give it advantage
    0; a failed judgment is a counted failure here, never a score). The loss is the clipped ratio with a k3 KL to
    the reference (the disabled adapter); with one update per sample the ratio's old policy is the current one
    (TRL's `num_iterations=1`). Its tokens are aggregated over the whole optimizer step as `loss.grpo_loss_type`
    says (TRL's `loss_type`, default "dapo", TRL's default): never per micro-batch, so the gradient does not
    depend on `train.micro_batch_size`."""

    judged, negatives, reference_conditions = True, False, ()

    def __init__(self, cfg: Config):
        self.cfg, self.max_length = cfg.loss, cfg.rollout.max_new_tokens
        self.step_tokens, self.step_size = 1.0, 1

    def select(self, index: int, rollout: Rollout, judgments: list[Judgment]) -> list[SampleCandidate]:
        score = {j.response: j.score for j in judgments}
        judged = [(r, score[r]) for r in rollout.samples if score.get(r) is not None]
        if len(judged) < 2:
            return []
        scores = torch.tensor([s for _, s in judged], dtype=torch.float32)
        adv = losses.group_advantages(scores, torch.zeros(len(judged), dtype=torch.long)).tolist()
        return [SampleCandidate(index, r, float(s), a) for (r, s), a in zip(judged, adv, strict=True)]

    def experience(
        self, candidate: SampleCandidate, rollout: Rollout, image_path: str, negative_path: str, step: int
    ) -> SampleExperience:
        return sample_experience(candidate, rollout, image_path, step)

    def begin_step(self, forward: Forward, batch: list[SampleExperience]) -> None:
        """The step's size and its response tokens (this rank's; their mean over the ranks for "dapo")."""
        policy = forward.policy
        conds = [Condition(forward.images[e.image_path], e.query, e.response) for e in batch]
        tokens = collate(policy.processor, conds, forward.no_image, forward.max_length).response_mask.sum()
        self.step_size, self.step_tokens = len(batch), forward.mean_over_ranks(float(tokens))

    def loss(self, forward: Forward, part: list[SampleExperience]) -> LossTerms:
        policy = forward.policy
        conds = [Condition(forward.images[e.image_path], e.query, e.response) for e in part]
        batch = collate(policy.processor, conds, no_image=forward.no_image, max_length=forward.max_length)
        batch = batch.to(policy.device)
        logps, mask = batch_token_logps(forward.model, batch)
        with policy.reference() as ref:
            ref_logps, _ = batch_token_logps(ref, batch)
        adv = torch.tensor([e.advantage for e in part], dtype=torch.float32, device=logps.device)
        c = self.cfg
        per_token, kl = losses.grpo_token_losses(
            logps, logps.detach(), ref_logps, adv, c.grpo_epsilon, c.grpo_beta
        )
        total = losses.grpo_sequence_losses(
            per_token, mask, c.grpo_loss_type, self.step_tokens, self.step_size, self.max_length
        )
        tokens = mask.sum().clamp(min=1)
        metrics = {
            "loss/grpo": float(total.detach().mean()),
            "kl": float((kl.detach() * mask).sum() / tokens),
            "logps/chosen": float((logps.detach() * mask).sum() / tokens),
        }
        return LossTerms(total, metrics)


class KTO:
    """Online KTO (Ethayarajh et al., 2024) over the judged samples: a distinct sample scored above
    `pairs.tau_pos` is desirable, one below `pairs.tau_neg` undesirable (Eq. 2's thresholds), the others are left
    out; each is an experience of its own (`SampleExperience`, advantage +1 / -1). The loss is `losses.kto_loss`
    with beta = `loss.beta` and TRL's weights (1, 1); its reference point z0 is estimated as TRL's `KTOTrainer`
    does, from mismatched pairs of the step's batch (example i's prompt with example i-1's response, under the
    policy without gradient and the reference), averaged over the ranks and clamped at 0 — over the whole step,
    so the gradient does not depend on the micro-batching. The reference log-probs come from the disabled adapter
    at the update, as for GRPO."""

    judged, negatives, reference_conditions = True, False, ()

    def __init__(self, cfg: Config):
        self.cfg, self.tau_pos, self.tau_neg = cfg.loss, cfg.pairs.tau_pos, cfg.pairs.tau_neg
        self.z0 = torch.zeros(())

    def select(self, index: int, rollout: Rollout, judgments: list[Judgment]) -> list[SampleCandidate]:
        out = []
        for response, j in zip(rollout.responses, judgments, strict=True):
            if j.score is not None and (j.score > self.tau_pos or j.score < self.tau_neg):
                out.append(
                    SampleCandidate(index, response, float(j.score), 1.0 if j.score > self.tau_pos else -1.0)
                )
        return out

    def experience(
        self, candidate: SampleCandidate, rollout: Rollout, image_path: str, negative_path: str, step: int
    ) -> SampleExperience:
        return sample_experience(candidate, rollout, image_path, step)

    def begin_step(self, forward: Forward, batch: list[SampleExperience]) -> None:
        mismatched = [
            Condition(forward.images[e.image_path], e.query, batch[i - 1].response)
            for i, e in enumerate(batch)
        ]
        with torch.no_grad():
            policy = _logps(forward, forward.model, mismatched)
            with forward.policy.reference() as ref:
                reference = _logps(forward, ref, mismatched)
        local = float((policy - reference).mean())
        self.z0 = torch.tensor(max(0.0, forward.mean_over_ranks(local)))  # clamp(min=0) as TRL

    def loss(self, forward: Forward, part: list[SampleExperience]) -> LossTerms:
        conds = [Condition(forward.images[e.image_path], e.query, e.response) for e in part]
        policy = _logps(forward, forward.model, conds)
        with torch.no_grad(), forward.policy.reference() as ref:
            reference = _logps(forward, ref, conds)
        desirable = torch.tensor([e.advantage > 0 for e in part], device=policy.device)
        loss = losses.kto_loss(policy, reference, desirable, self.z0.to(policy.device), self.cfg.beta)
        rewards = self.cfg.beta * (policy - reference).detach()
        metrics = {
            "loss/kto": float(loss.detach().mean()),
            "kl": float(self.z0),
            "logps/chosen": float(policy.detach().mean()),
        }
        metrics["rewards/desirable"] = float(rewards[desirable].mean()) if desirable.any() else 0.0
        metrics["rewards/undesirable"] = float(rewards[~desirable].mean()) if (~desirable).any() else 0.0
        return LossTerms(loss, metrics)


def sample_experience(
    candidate: SampleCandidate, rollout: Rollout, image_path: str, step: int
) -> SampleExperience:
    """The buffer record of a judged sample (GRPO, KTO)."""
    e = rollout.example
    return SampleExperience(
        e.id, e.query, image_path, candidate.response, candidate.score, candidate.advantage, step
    )


def _logps(forward: Forward, model, conds: list[Condition]) -> torch.Tensor:
    out = sequence_logps(
        model, forward.policy.processor, conds, no_image=forward.no_image, max_length=forward.max_length
    )
    return out.logps
