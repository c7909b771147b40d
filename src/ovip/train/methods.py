"""The paper's baselines in the same engine as OViP (Tables 2-5): same data, rollout, judge, negatives, buffer
and evaluation; a method only chooses what a prompt turns into and when the buffer is trained on.

| method         | experiences from a prompt                         | negatives | updates                       | loss                 |
| -------------- | ------------------------------------------------- | --------- | ----------------------------- | -------------------- |
| ovip           | Eq. 2 pairs of k samples (A* fallback)            | yes       | whenever |B| >= N (App. F)    | L_Text + L_Image     |
| dpo-online     | the same pairs                                    | no        | whenever |B| >= N             | L_Text (Eq. 4)       |
| ovip-offline   | the same pairs, all sampled by the initial model  | yes       | after the whole data          | L_Text + L_Image     |
| dpo            | as ovip-offline                                   | no        | after the whole data          | L_Text               |
| dpo-iterative  | pairs sampled by the current model, round by round| no        | after each 1/`rounds` of data | L_Text               |
| mdpo           | as dpo, negatives = crops of I+ (mDPO)            | crop      | after the whole data          | L_Text + L_Image^base + anchor |
| sft            | the reference answer A*                           | no        | whenever |B| >= N             | token NLL of A*      |
| grpo           | all k samples, advantage = group z-score          | no        | whenever |B| >= N             | clipped ratio + KL   |
| kto            | judged samples above tau_pos / below tau_neg      | no        | whenever |B| >= N             | KTO (Eq. 7)          |

"Offline" here is the paper's Table 4 setting: data sampled once from the model before training, then trained
on for the epoch (its Fig. 4 "Off Policy"); `dpo-iterative` re-samples from the current model every 1/rounds of
the data (Fig. 4's iterative scheme within one epoch). mDPO (Wang et al., 2024) is DPO + its conditional image
preference with a cropped image (= L_Image^base, Appendix B.1) + its anchor with delta 0 (= L_Anchor). GRPO
(Shao et al., 2024) uses the judge's scores of all k samples (duplicates counted per sample): advantages are
z-scores within the group, the loss is the clipped ratio with a k3 KL to the reference (the disabled adapter),
aggregated over the optimizer step's tokens as TRL's `loss_type` ("dapo" by default); with one update per
sample the ratio's old policy is the current one (TRL's `num_iterations=1`). The paper gives no GRPO
hyper-parameters and its released code's `GRPOTrainerWithBuffer` is not documented; `loss.grpo_beta` 0.04,
`loss.grpo_epsilon` 0.2 and `loss.grpo_loss_type` dapo are TRL's defaults. KTO (Ethayarajh et al., 2024)
trains on the judged samples beyond the pair thresholds (`ovip.train.objective.KTO`).

A method is a registry entry: an objective (`ovip.train.objective`), a schedule (`ovip.train.schedule`) and
the config defaults it sets; `apply_method` writes those into the config where the recipe left the defaults,
so the run folder's config.yaml records what was trained. Nothing else tests a method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ovip.config import Config, LossConfig, registry
from ovip.config.sections import MethodName
from ovip.errors import ConfigError
from ovip.train.objective import GRPO, KTO, SFT, Objective, Pairs
from ovip.train.schedule import Online, Phases


def _text_only(cfg: Config) -> None:
    """A pair method without negative images has no image loss; asking for one is a ConfigError."""
    if cfg.loss.image not in (LossConfig().image, "none"):
        raise ConfigError(
            f"loss.image: {cfg.train.method} has no negative images; {cfg.loss.image!r} needs them"
        )
    cfg.loss.image = "none"


def _mdpo(cfg: Config) -> None:
    """mDPO's conditional preference with a crop of I+ as the worse image, and its anchor (delta 0), where the
    recipe kept the defaults; random negative images stay as an ablation."""
    default = LossConfig()
    if cfg.loss.image == default.image:
        cfg.loss.image = "base"
    if cfg.loss.anchor_weight == default.anchor_weight:
        cfg.loss.anchor_weight = 1.0
    if cfg.negatives.kind != "random":
        cfg.negatives.kind = "crop"


@dataclass(frozen=True)
class Method:
    """A registered method: its objective (built from the run's Config), its schedule (built from the number of
    prompts and `train.rounds`) and the config defaults it sets (`configure`)."""

    objective: Callable[[Config], Objective]
    schedule: Callable[[Config, int], Online | Phases]
    configure: Callable[[Config], None] | None = None


def _phases(rounds: bool):
    return lambda cfg, total: Phases(total, cfg.train.rounds if rounds else None)


def _online(cfg: Config, total: int) -> Online:
    return Online(total)


METHODS: dict[str, Method] = registry(MethodName, {
    "ovip": Method(partial(Pairs, negatives=True), _online),
    "dpo-online": Method(partial(Pairs, negatives=False), _online, _text_only),
    "ovip-offline": Method(partial(Pairs, negatives=True), _phases(False)),
    "dpo": Method(partial(Pairs, negatives=False), _phases(False), _text_only),
    "dpo-iterative": Method(partial(Pairs, negatives=False), _phases(True), _text_only),
    "mdpo": Method(partial(Pairs, negatives=True), _phases(False), _mdpo),
    "sft": Method(SFT, _online),
    "grpo": Method(GRPO, _online),
    "kto": Method(KTO, _online),
})  # fmt: skip


def method_of(cfg: Config) -> Method:
    return METHODS[cfg.train.method]


def objective_of(cfg: Config) -> Objective:
    """The objective of the method `cfg` trains (cheap: no model is loaded)."""
    return method_of(cfg).objective(cfg)


def apply_method(cfg: Config) -> Config:
    """Set the method's loss and negatives where the recipe kept the defaults (so the run folder's config.yaml
    records what was trained); a recipe that asks for what the method cannot have is a ConfigError."""
    configure = method_of(cfg).configure
    if configure is not None:
        configure(cfg)
    return cfg
