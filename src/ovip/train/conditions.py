"""The scored conditions of a preference pair and their log-probs in one padded forward.

A pair's conditions are (A+|I+,Q) (A-|I+,Q) (A+|Q) (A+|I-,Q) and, for L_Image-Sym or the bi-anchor, (A-|Q)
(A-|I-,Q) (Algorithm 1, Table 6; Appendix B.1). The conditions of a micro-batch go through ONE padded forward
(`ovip.policy.logprobs.sequence_logps`); only the conditions a loss reads are scored (`needed_conditions`):

* With beta1 == beta2 (the paper's setting, B.2) Eq. 5 is exactly L_Image^base: the image-free reward enters
  as beta1 * [r(A+|I+) - r(A+|Q)] + beta2 * [r(A+|Q) - r(A+|I-)] = beta * [r(A+|I+) - r(A+|I-)], so the
  gradient with respect to log pi(A+|Q) is beta1 - beta2 = 0 and the image-free forward is skipped.
* Without negative images (dpo-online, dpo, dpo-iterative) only (A+|I+,Q) and (A-|I+,Q) are scored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from PIL import Image

from ovip.config import LossConfig
from ovip.policy.batch import Condition
from ovip.policy.logprobs import sequence_logps
from ovip.records import PairExperience

# Condition name (as stored in PairExperience.reference_logps) -> field of `Logps`.
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
    def of_references(cls, experiences: list[PairExperience], names: tuple[str, ...], device=None) -> Logps:
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
        """Experience i's values by condition name (what `PairExperience.reference_logps` stores)."""
        names = {v: k for k, v in FIELDS.items()}
        return {
            names[f.name]: float(getattr(self, f.name)[i])
            for f in fields(self)
            if f.name in names and getattr(self, f.name) is not None
        }


def needed_conditions(loss: LossConfig) -> tuple[str, ...]:
    """The conditions the configured pair loss reads: the text pair, what the image loss reads
    (`ovip.train.image_losses`) and (A-|Q) for the bi-anchor, in the order of `FIELDS`."""
    from ovip.train.image_losses import IMAGE_LOSSES

    names = {"chosen|image", "rejected|image", *IMAGE_LOSSES[loss.image].reads(loss)}
    if loss.bi_anchor_weight > 0:
        names.add("rejected|none")
    return tuple(n for n in FIELDS if n in names)


def build_conditions(
    exp: PairExperience, names: tuple[str, ...], images: dict[str, Image.Image]
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
    experiences: list[PairExperience],
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
