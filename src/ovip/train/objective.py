"""L_OViP (Eq. 6) for a batch of experiences: build the scored conditions, run the policy, apply the losses.

The four conditions of one experience — (A+|I+,Q) (A-|I+,Q) (A+|Q) (A+|I-,Q) — go through ONE padded forward
(`ovip.policy.logprobs.sequence_logps`); the reference log-probs were computed once when the experience
entered the buffer (`reference_logps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ovip import losses
from ovip.config import LossConfig
from ovip.policy.batch import Condition
from ovip.policy.logprobs import sequence_logps
from ovip.records import CONDITIONS, EXTRA_CONDITIONS, Experience


def needed_conditions(loss: LossConfig) -> tuple[str, ...]:
    extra = loss.image == "sym" or loss.bi_anchor_weight > 0
    return CONDITIONS + (EXTRA_CONDITIONS if extra else ())


def build_conditions(exp: Experience, names: tuple[str, ...], images: dict[str, Image.Image]) -> list[Condition]:
    """Conditions of one experience, in `names` order; `images` maps a stored path to its loaded image."""
    pictures = {"image": images[exp.image_path], "negative": images[exp.negative_image_path], "none": None}
    out = []
    for name in names:
        which, _, picture = name.partition("|")
        response = exp.chosen if which == "chosen" else exp.rejected
        out.append(Condition(pictures[picture], exp.query, response))
    return out


def score_conditions(model, processor, experiences: list[Experience], names: tuple[str, ...],
                     images: dict[str, Image.Image], no_image: str, micro_batch_size: int | None = None,
                     max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Summed log-probs per condition name: {name: [E]}, plus '<name>#tokens' token counts."""
    conds = [c for e in experiences for c in build_conditions(e, names, images)]
    out = sequence_logps(model, processor, conds, no_image=no_image,
                         micro_batch_size=micro_batch_size and micro_batch_size * len(names), max_length=max_length)
    per = out.logps.view(len(experiences), len(names))
    counts = out.token_counts.view(len(experiences), len(names))
    result = {name: per[:, j] for j, name in enumerate(names)}
    result.update({f"{name}#tokens": counts[:, j] for j, name in enumerate(names)})
    return result


@dataclass
class LossTerms:
    """Per-example loss [E] and the metrics of its terms (names as logged: loss/text, loss/image, ...)."""

    total: torch.Tensor
    metrics: dict[str, float]


def ovip_loss(policy: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], cfg: LossConfig) -> LossTerms:
    """Eq. 6 = text_weight * L_Text (Eq. 4) + image_weight * L_Image (Eq. 5 or a B.1 variant) + auxiliaries."""
    p, r = policy, reference
    c, rj, cn, cg = "chosen|image", "rejected|image", "chosen|none", "chosen|negative"
    text = losses.text_loss(p[c], r[c], p[rj], r[rj], cfg.beta)
    if cfg.image == "ovip":
        image = losses.image_loss(p[c], r[c], p[cn], r[cn], p[cg], r[cg], cfg.beta1, cfg.beta2)
    elif cfg.image == "split":
        image = losses.image_loss_split(p[c], r[c], p[cn], r[cn], p[cg], r[cg], cfg.beta1)
    elif cfg.image == "base":
        image = losses.image_loss_base(p[c], r[c], p[cg], r[cg], cfg.beta1)
    elif cfg.image == "sym":
        rn, rg = "rejected|none", "rejected|negative"
        image = losses.image_loss_sym(p[c], r[c], p[cn], r[cn], p[cg], r[cg],
                                      p[rj], r[rj], p[rn], r[rn], p[rg], r[rg], cfg.beta1, cfg.beta2)
    else:
        image = torch.zeros_like(text)
    total = cfg.text_weight * text + cfg.image_weight * image
    metrics = {"loss/text": float(text.detach().mean()), "loss/image": float(image.detach().mean())}
    if cfg.anchor_weight:
        anchor = losses.anchor_loss(p[c], r[c], cfg.beta)
        total = total + cfg.anchor_weight * anchor
        metrics["loss/anchor"] = float(anchor.detach().mean())
    if cfg.bi_anchor_weight:
        bi = losses.bi_anchor_loss(p[c], r[c], p["rejected|none"], r["rejected|none"], cfg.beta)
        total = total + cfg.bi_anchor_weight * bi
        metrics["loss/bi_anchor"] = float(bi.detach().mean())
    if cfg.sft_weight:
        sft = losses.sft_loss(p[c], p[f"{c}#tokens"])
        total = total + cfg.sft_weight * sft
        metrics["loss/sft"] = float(sft.detach().mean())
    metrics.update(losses.Rewards.of(p[c], r[c], p[rj], r[rj], cfg.beta).metrics())
    image_margin = cfg.beta1 * ((p[c] - r[c]) - (p[cg] - r[cg]))
    metrics["rewards/image_margins"] = float(image_margin.detach().mean())
    metrics["logps/chosen"] = float(p[c].detach().mean())
    metrics["logps/rejected"] = float(p[rj].detach().mean())
    return LossTerms(total, metrics)


def reference_tensors(experiences: list[Experience], names: tuple[str, ...], device=None) -> dict[str, torch.Tensor]:
    return {n: torch.tensor([e.reference_logps[n] for e in experiences], dtype=torch.float32, device=device)
            for n in names}
