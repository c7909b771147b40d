"""The training objectives over a batch of experiences: build the scored conditions, run the policy, apply the
pure losses of `ovip.losses`.

Pair methods (OViP and the DPO family): the conditions of one experience — (A+|I+,Q) (A-|I+,Q) (A+|Q) (A+|I-,Q)
and, for L_Image-Sym or the bi-anchor, (A-|Q) (A-|I-,Q) — go through ONE padded forward
(`ovip.policy.logprobs.sequence_logps`); the reference log-probs were computed once when the experience entered
the buffer (`Experience.reference_logps`). Only the conditions a loss reads are scored (`needed_conditions`):

* With beta1 == beta2 (the paper's setting, B.2) Eq. 5 is exactly L_Image^base: the image-free reward enters
  as beta1 * [r(A+|I+) - r(A+|Q)] + beta2 * [r(A+|Q) - r(A+|I-)] = beta * [r(A+|I+) - r(A+|I-)], so the
  gradient with respect to log pi(A+|Q) is beta1 - beta2 = 0 and the image-free forward is skipped.
* Without negative images (dpo-online, dpo, dpo-iterative) only (A+|I+,Q) and (A-|I+,Q) are scored.

SFT scores (A*|I+,Q) only; GRPO needs per-token log-probs of the policy and the reference (`grpo_terms`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from PIL import Image

from ovip import losses
from ovip.config import LossConfig
from ovip.policy.batch import Condition, collate
from ovip.policy.logprobs import batch_token_logps, sequence_logps
from ovip.records import Experience

# Condition name (as stored in Experience.reference_logps) -> field of `Logps`.
FIELDS = {
    "chosen|image": "chosen",
    "rejected|image": "rejected",
    "chosen|none": "chosen_none",
    "chosen|negative": "chosen_neg",
    "rejected|none": "rejected_none",
    "rejected|negative": "rejected_neg",
}


@dataclass
class Logps:
    """Summed response log-probs [E] of E experiences, one field per condition (None: not scored), and the
    number of response tokens of (A+|I+,Q) (`chosen_tokens`, for the per-token SFT loss)."""

    chosen: torch.Tensor | None = None
    rejected: torch.Tensor | None = None
    chosen_none: torch.Tensor | None = None
    chosen_neg: torch.Tensor | None = None
    rejected_none: torch.Tensor | None = None
    rejected_neg: torch.Tensor | None = None
    chosen_tokens: torch.Tensor | None = None

    @classmethod
    def of_references(cls, experiences: list[Experience], names: tuple[str, ...], device=None) -> Logps:
        """The reference log-probs stored in the experiences."""
        return cls(
            **{
                FIELDS[n]: torch.tensor(
                    [e.reference_logps[n] for e in experiences], dtype=torch.float32, device=device
                )
                for n in names
            }
        )

    def as_floats(self, i: int) -> dict[str, float]:
        """Experience i's values by condition name (what `Experience.reference_logps` stores)."""
        names = {v: k for k, v in FIELDS.items()}
        return {
            names[f.name]: float(getattr(self, f.name)[i])
            for f in fields(self)
            if f.name in names and getattr(self, f.name) is not None
        }


def needed_conditions(loss: LossConfig) -> tuple[str, ...]:
    """The conditions the configured pair loss reads (module docstring)."""
    names = ["chosen|image", "rejected|image"]
    if loss.image in ("ovip", "split", "sym") and not (loss.image == "ovip" and loss.beta1 == loss.beta2):
        names.append("chosen|none")
    if loss.image != "none":
        names.append("chosen|negative")
    if loss.image == "sym" or loss.bi_anchor_weight > 0:
        names += ["rejected|none"] + (["rejected|negative"] if loss.image == "sym" else [])
    return tuple(names)


def build_conditions(
    exp: Experience, names: tuple[str, ...], images: dict[str, Image.Image]
) -> list[Condition]:
    """Conditions of one experience, in `names` order; `images` maps a stored path to its loaded image."""
    out = []
    for name in names:
        which, _, picture = name.partition("|")
        image = {"image": exp.image_path, "negative": exp.negative_image_path}.get(picture)
        out.append(
            Condition(
                images[image] if image else None, exp.query, exp.chosen if which == "chosen" else exp.rejected
            )
        )
    return out


def score_conditions(
    model,
    processor,
    experiences: list[Experience],
    names: tuple[str, ...],
    images: dict[str, Image.Image],
    no_image: str,
    micro_batch_size: int | None = None,
    max_length: int | None = None,
) -> Logps:
    """Summed log-probs of every condition in `names` for each experience, in one padded forward per
    micro-batch; the experiences' conditions are laid out experience by experience, `names` within each."""
    conds = [c for e in experiences for c in build_conditions(e, names, images)]
    out = sequence_logps(
        model,
        processor,
        conds,
        no_image=no_image,
        micro_batch_size=micro_batch_size and micro_batch_size * len(names),
        max_length=max_length,
    )
    per = out.logps.view(len(experiences), len(names))
    result = Logps(**{FIELDS[n]: per[:, j] for j, n in enumerate(names)})
    result.chosen_tokens = out.token_counts.view(len(experiences), len(names))[:, names.index("chosen|image")]
    return result


@dataclass
class LossTerms:
    """Per-example loss [E] and the metrics of its terms (names as logged: loss/text, loss/image, ...)."""

    total: torch.Tensor
    metrics: dict[str, float]


def ovip_loss(p: Logps, r: Logps, cfg: LossConfig) -> LossTerms:
    """Eq. 6 = text_weight * L_Text (Eq. 4) + image_weight * L_Image (Eq. 5 or a B.1 variant) + auxiliaries.
    `p` are the policy's log-probs, `r` the reference's."""
    text = losses.text_loss(p.chosen, r.chosen, p.rejected, r.rejected, cfg.beta)
    if cfg.image == "ovip" and p.chosen_none is None:  # beta1 == beta2: Eq. 5 is the base form (docstring)
        image = losses.image_loss_base(p.chosen, r.chosen, p.chosen_neg, r.chosen_neg, cfg.beta1)
    elif cfg.image == "ovip":
        image = losses.image_loss(
            p.chosen, r.chosen, p.chosen_none, r.chosen_none, p.chosen_neg, r.chosen_neg, cfg.beta1, cfg.beta2
        )
    elif cfg.image == "split":
        image = losses.image_loss_split(
            p.chosen, r.chosen, p.chosen_none, r.chosen_none, p.chosen_neg, r.chosen_neg, cfg.beta1
        )
    elif cfg.image == "base":
        image = losses.image_loss_base(p.chosen, r.chosen, p.chosen_neg, r.chosen_neg, cfg.beta1)
    elif cfg.image == "sym":
        image = losses.image_loss_sym(
            p.chosen,
            r.chosen,
            p.chosen_none,
            r.chosen_none,
            p.chosen_neg,
            r.chosen_neg,
            p.rejected,
            r.rejected,
            p.rejected_none,
            r.rejected_none,
            p.rejected_neg,
            r.rejected_neg,
            cfg.beta1,
            cfg.beta2,
        )
    else:
        image = torch.zeros_like(text)
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


def sft_terms(p: Logps) -> LossTerms:
    """Supervised fine-tuning on A* (the `sft` baseline): per-example mean token negative log-likelihood."""
    loss = losses.sft_loss(p.chosen, p.chosen_tokens)
    return LossTerms(
        loss, {"loss/sft": float(loss.detach().mean()), "logps/chosen": float(p.chosen.detach().mean())}
    )


def grpo_terms(
    policy,
    experiences: list[Experience],
    images: dict[str, Image.Image],
    cfg: LossConfig,
    no_image: str,
    max_length: int | None,
    model=None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO's token-level loss (`ovip.losses.grpo_loss`) of a micro-batch of sampled responses (`chosen`) with
    their group advantages: the policy's per-token log-probs, the old policy's = the same detached (one update
    per sample), the reference's from the disabled adapter. Returns (loss summed over the micro-batch's tokens,
    token count) so that accumulation over micro-batches averages over all tokens of the step. `model` is the
    module that trains (the engine's wrapper with several ranks; default `policy.model`)."""
    conds = [Condition(images[e.image_path], e.query, e.chosen) for e in experiences]
    batch = collate(policy.processor, conds, no_image=no_image, max_length=max_length).to(policy.device)
    logps, mask = batch_token_logps(policy.model if model is None else model, batch)
    with policy.reference() as ref:
        ref_logps, _ = batch_token_logps(ref, batch)
    adv = torch.tensor([e.advantage for e in experiences], dtype=torch.float32, device=logps.device)
    mean, kl = losses.grpo_loss(logps, logps.detach(), ref_logps, mask, adv, cfg.grpo_epsilon, cfg.grpo_beta)
    tokens = mask.sum()
    return mean * tokens, {
        "loss/grpo": float(mean.detach()),
        "kl": float(kl),
        "tokens": float(tokens),
        "logps/chosen": float((logps.detach() * mask).sum() / tokens.clamp(min=1)),
    }
