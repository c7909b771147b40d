"""The image-side losses a config can name (`loss.image`, Eq. 5 and Appendix B.1) and the conditions each reads.

Each entry is a function of the policy's and the reference's log-probs (`ovip.train.conditions.Logps`) and the
conditions it needs beyond (A+|I+,Q) and (A-|I+,Q):

    ovip   Eq. 5: one sigmoid over beta1 [r(A+|I+) - r(A+|Q)] + beta2 [r(A+|Q) - r(A+|I-)]; with beta1 == beta2
           (the paper's setting) exactly L_Image^base, so (A+|Q) is not scored (`ovip.train.conditions`)
    split  the authors' released code: two sigmoids, I+ over no image and no image over I-
    base   L_Image^base: DPO over the image pair (and mDPO's conditional preference)
    sym    L_Image-Sym: L_Image(I+, I-; A+) + L_Image(I-, I+; A-)
    none   no image loss (the DPO family)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ovip import losses
from ovip.config import LossConfig, registry
from ovip.config.sections import ImageLoss as ImageLossName


@dataclass(frozen=True)
class ImageLoss:
    loss: Callable  # (policy Logps, reference Logps, LossConfig) -> [E]
    reads: Callable[[LossConfig], tuple[str, ...]]  # the conditions it needs beyond the text pair


def _ovip(p, r, cfg: LossConfig) -> torch.Tensor:
    if p.chosen_none is None:  # beta1 == beta2: Eq. 5 is the base form
        return losses.image_loss_base(p.chosen, r.chosen, p.chosen_neg, r.chosen_neg, cfg.beta1)
    return losses.image_loss(
        p.chosen, r.chosen, p.chosen_none, r.chosen_none, p.chosen_neg, r.chosen_neg, cfg.beta1, cfg.beta2
    )


def _split(p, r, cfg: LossConfig) -> torch.Tensor:
    return losses.image_loss_split(
        p.chosen, r.chosen, p.chosen_none, r.chosen_none, p.chosen_neg, r.chosen_neg, cfg.beta1
    )


def _base(p, r, cfg: LossConfig) -> torch.Tensor:
    return losses.image_loss_base(p.chosen, r.chosen, p.chosen_neg, r.chosen_neg, cfg.beta1)


def _sym(p, r, cfg: LossConfig) -> torch.Tensor:
    return losses.image_loss_sym(
        p.chosen, r.chosen, p.chosen_none, r.chosen_none, p.chosen_neg, r.chosen_neg,
        p.rejected, r.rejected, p.rejected_none, r.rejected_none, p.rejected_neg, r.rejected_neg,
        cfg.beta1, cfg.beta2,
    )  # fmt: skip


def _none(p, r, cfg: LossConfig) -> torch.Tensor:
    return torch.zeros_like(p.chosen)


IMAGE_LOSSES: dict[str, ImageLoss] = registry(
    ImageLossName,
    {
        "ovip": ImageLoss(
            _ovip,
            lambda c: ("chosen|negative",) if c.beta1 == c.beta2 else ("chosen|none", "chosen|negative"),
        ),
        "split": ImageLoss(_split, lambda c: ("chosen|none", "chosen|negative")),
        "base": ImageLoss(_base, lambda c: ("chosen|negative",)),
        "sym": ImageLoss(
            _sym, lambda c: ("chosen|none", "chosen|negative", "rejected|none", "rejected|negative")
        ),
        "none": ImageLoss(_none, lambda c: ()),
    },
)
