"""Preference losses as pure functions over per-sequence summed log-probs.

Notation: every argument is a [B] tensor of summed response log-probs; `r(x) = policy_x - reference_x` is the
implicit reward without beta. Each function returns the per-example loss [B]; the caller averages.

    chosen        log pi(A+ | I+, Q)        rejected   log pi(A- | I+, Q)
    chosen_none   log pi(A+ | Q)            chosen_neg log pi(A+ | I-, Q)
    rejected_none log pi(A- | Q)            rejected_neg log pi(A- | I-, Q)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def dpo(policy_a: Tensor, reference_a: Tensor, policy_b: Tensor, reference_b: Tensor, beta: float) -> Tensor:
    """-log sigma(beta * [r(a) - r(b)]): a preferred over b (Rafailov et al., 2023)."""
    return -F.logsigmoid(beta * ((policy_a - reference_a) - (policy_b - reference_b)))


def text_loss(chosen, ref_chosen, rejected, ref_rejected, beta: float = 0.1) -> Tensor:
    """L_Text, Eq. 4: A+ preferred over A- given the original image I+."""
    return dpo(chosen, ref_chosen, rejected, ref_rejected, beta)


def image_loss(
    chosen,
    ref_chosen,
    chosen_none,
    ref_chosen_none,
    chosen_neg,
    ref_chosen_neg,
    beta1: float = 0.1,
    beta2: float = 0.1,
) -> Tensor:
    """L_Image, Eq. 5: ONE sigmoid over beta1*[r(A+|I+) - r(A+|Q)] + beta2*[r(A+|Q) - r(A+|I-)].

    The image-free term r(A+|Q) sits between the original and the negative image. (The authors' code, strategy
    `orm`, splits this into two separate sigmoids; the paper's Eq. 5 is the specification; the split form is
    `image_loss_split`.)
    """
    r_pos = chosen - ref_chosen
    r_none = chosen_none - ref_chosen_none
    r_neg = chosen_neg - ref_chosen_neg
    return -F.logsigmoid(beta1 * (r_pos - r_none) + beta2 * (r_none - r_neg))


def image_loss_split(
    chosen,
    ref_chosen,
    chosen_none,
    ref_chosen_none,
    chosen_neg,
    ref_chosen_neg,
    beta: float = 0.1,
    half: bool = False,
) -> Tensor:
    """The authors' released code (strategy `orm`): DPO(I+ over none) + DPO(none over I-), each its own sigmoid.

    `half=True` is their default `(cdpo + rdpo) / 2`; their README command uses `--not_half_dpo_loss`.
    """
    total = dpo(chosen, ref_chosen, chosen_none, ref_chosen_none, beta) + dpo(
        chosen_none, ref_chosen_none, chosen_neg, ref_chosen_neg, beta
    )
    return total / 2 if half else total


def image_loss_base(chosen, ref_chosen, chosen_neg, ref_chosen_neg, beta: float = 0.1) -> Tensor:
    """L_Image^base (Appendix B.1): DPO over the image pair, -log sigma(beta*[r(A+|I+) - r(A+|I-)]).

    The appendix prints it without the leading minus sign; as a loss to minimise it must carry it.
    """
    return dpo(chosen, ref_chosen, chosen_neg, ref_chosen_neg, beta)


def image_loss_sym(
    chosen,
    ref_chosen,
    chosen_none,
    ref_chosen_none,
    chosen_neg,
    ref_chosen_neg,
    rejected,
    ref_rejected,
    rejected_none,
    ref_rejected_none,
    rejected_neg,
    ref_rejected_neg,
    beta1: float = 0.1,
    beta2: float = 0.1,
) -> Tensor:
    """L_Image-Sym (Appendix B.1): L_Image(I+, I-; A+) + L_Image(I-, I+; A-).

    The second term treats (I-, A-) as a correct pair: A- is preferred with I- over no image over I+.
    """
    forward = image_loss(
        chosen, ref_chosen, chosen_none, ref_chosen_none, chosen_neg, ref_chosen_neg, beta1, beta2
    )
    backward = image_loss(
        rejected_neg, ref_rejected_neg, rejected_none, ref_rejected_none, rejected, ref_rejected, beta1, beta2
    )
    return forward + backward


def anchor_loss(chosen, ref_chosen, beta: float = 0.1) -> Tensor:
    """L_Anchor (Appendix B.1, mDPO): -log sigma(beta * r(A+|I+)) pushes the chosen likelihood up."""
    return -F.logsigmoid(beta * (chosen - ref_chosen))


def bi_anchor_loss(chosen, ref_chosen, rejected_none, ref_rejected_none, beta: float = 0.1) -> Tensor:
    """L_Bi-Anchor (Appendix B.1): -log sigma(beta*r(A+|I+)) + log sigma(beta*r(A-|Q)).

    Transcribed as printed: the second term conditions A- on the query only (no image).
    """
    return -F.logsigmoid(beta * (chosen - ref_chosen)) + F.logsigmoid(
        beta * (rejected_none - ref_rejected_none)
    )


def sft_loss(chosen: Tensor, chosen_tokens: Tensor) -> Tensor:
    """Per-token negative log-likelihood of A+ (the authors' `pref_ftx` term, RLAIF-V's SFT weight)."""
    return -chosen / chosen_tokens.clamp(min=1)


def group_advantages(scores: Tensor, groups: Tensor, eps: float = 1e-4, scale: bool = True) -> Tensor:
    """GRPO's group-relative advantages (Shao et al., 2024, DeepSeekMath, Sec. 4.1.2): for response i of the
    group g(i) of k samples of one prompt, A_i = (r_i - mean_g r) / (std_g r + eps) (`scale=False`: no division,
    Dr. GRPO). `scores` [N] judge scores, `groups` [N] integer group ids. std is the sample std (unbiased), as
    TRL's `GRPOTrainer`; a one-member group has advantage 0."""
    out = torch.zeros_like(scores, dtype=torch.float32)
    for g in torch.unique(groups):
        idx = groups == g
        r = scores[idx].float()
        centered = r - r.mean()
        std = r.std() if r.numel() > 1 else torch.zeros((), dtype=r.dtype)
        out[idx] = centered / (std + eps) if scale else centered
    return out


def grpo_token_losses(
    logps: Tensor,
    old_logps: Tensor,
    ref_logps: Tensor,
    advantages: Tensor,
    epsilon: float = 0.2,
    beta: float = 0.04,
) -> tuple[Tensor, Tensor]:
    """GRPO's per-token loss and k3 KL [N, T] (see `grpo_loss`), before any aggregation over tokens."""
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(1).to(logps.dtype)
    surrogate = -torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
    kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
    return surrogate + beta * kl, kl


def grpo_sequence_losses(
    per_token: Tensor, mask: Tensor, loss_type: str, step_tokens: float, step_size: int, max_length: int
) -> Tensor:
    """Each sequence's share [N] of GRPO's loss over an optimizer step of `step_size` sequences holding
    `step_tokens` response tokens, such that their mean over the step is the step's loss (TRL's `loss_type`):

        dapo     sum over the step's tokens / step_tokens          (TRL's default; DAPO, Yu et al., 2025)
        grpo     mean over sequences of each sequence's token mean  (DeepSeekMath's 1/|o_i| normalisation)
        dr_grpo  sum over the step's tokens / (step_size * max_length)  (Dr. GRPO, Liu et al., 2025)

    Each form depends only on the step, never on how it is cut into micro-batches."""
    mask = mask.to(per_token.dtype)
    sums = (per_token * mask).sum(1)
    if loss_type == "dapo":
        return sums * step_size / max(step_tokens, 1.0)
    if loss_type == "grpo":
        return sums / mask.sum(1).clamp(min=1)
    if loss_type == "dr_grpo":
        return sums / max_length
    raise ValueError(f"unknown GRPO loss type {loss_type!r}")


def grpo_loss(
    logps: Tensor,
    old_logps: Tensor,
    ref_logps: Tensor,
    mask: Tensor,
    advantages: Tensor,
    epsilon: float = 0.2,
    beta: float = 0.04,
) -> tuple[Tensor, Tensor]:
    """GRPO's clipped surrogate with a per-token KL penalty to the reference, averaged over all response tokens
    of the batch (token-level normalisation: long answers weigh by their length, TRL's `loss_type="bnpo"`).

    Inputs are per-token: `logps`, `old_logps` (the sampling policy, detached), `ref_logps` [N, T]; `mask`
    [N, T] (1 on response tokens); `advantages` [N]. Per token:
        ratio = exp(logps - old_logps)
        loss  = -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) + beta * KL,
        KL    = exp(ref - logps) - (ref - logps) - 1        (the k3 estimator, Schulman 2020; >= 0)
    Returns (scalar loss, mean per-token KL) — the KL for logging.
    """
    mask = mask.to(logps.dtype)
    per_token, kl = grpo_token_losses(logps, old_logps, ref_logps, advantages, epsilon, beta)
    tokens = mask.sum().clamp(min=1.0)
    return (per_token * mask).sum() / tokens, ((kl * mask).sum() / tokens).detach()


def kto_loss(
    policy: Tensor,
    reference: Tensor,
    desirable: Tensor,
    z0: Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Tensor:
    """KTO (Ethayarajh et al., 2024, Eq. 7), per example: with the implicit reward r = log pi(y|x) - log
    pi_ref(y|x) (summed over the response) and the reference point z0 (a detached estimate of the KL of the
    policy to the reference, clamped at 0),

        desirable y     w_D (1 - sigmoid(beta (r - z0)))
        undesirable y   w_U (1 - sigmoid(beta (z0 - r)))

    as TRL's `KTOTrainer` (`loss_type="kto"`) computes it; `desirable` [B] bool, `z0` a scalar tensor."""
    r = policy - reference
    return torch.where(
        desirable,
        desirable_weight * (1 - torch.sigmoid(beta * (r - z0))),
        undesirable_weight * (1 - torch.sigmoid(beta * (z0 - r))),
    )


def kto_reference_point(policy_mismatched: Tensor, reference_mismatched: Tensor) -> Tensor:
    """KTO's z0 as TRL estimates it: the mean of log pi(y'|x) - log pi_ref(y'|x) over mismatched pairs (each
    prompt x with another example's response y'), detached and clamped at 0."""
    return (policy_mismatched - reference_mismatched).mean().detach().clamp(min=0)


@dataclass
class Rewards:
    """TRL's dashboard vocabulary: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies."""

    chosen: Tensor
    rejected: Tensor

    @classmethod
    def of(cls, chosen, ref_chosen, rejected, ref_rejected, beta: float) -> Rewards:
        return cls((beta * (chosen - ref_chosen)).detach(), (beta * (rejected - ref_rejected)).detach())

    def metrics(self) -> dict[str, float]:
        margins = self.chosen - self.rejected
        return {
            "rewards/chosen": float(self.chosen.mean()),
            "rewards/rejected": float(self.rejected.mean()),
            "rewards/margins": float(margins.mean()),
            "rewards/accuracies": float((margins > 0).float().mean()),
        }
