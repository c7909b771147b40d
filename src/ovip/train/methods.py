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
| grpo           | every judged sample, advantage = group z-score    | no        | whenever |B| >= N             | clipped ratio + KL   |

"Offline" here is the paper's Table 4 setting: data sampled once from the model before training, then trained
on for the epoch (its Fig. 4 "Off Policy"); `dpo-iterative` re-samples from the current model every 1/rounds of
the data (Fig. 4's iterative scheme within one epoch). mDPO (Wang et al., 2024) is DPO + its conditional image
preference with a cropped image (= L_Image^base, Appendix B.1) + its anchor with delta 0 (= L_Anchor). GRPO
(Shao et al., 2024) uses the judge's scores of the k samples: advantages are z-scores within the group, the loss
is the clipped ratio with a k3 KL to the reference (the disabled adapter), averaged over tokens; with one update
per sample the ratio's old policy is the current one (TRL's `num_iterations=1`). The paper gives no GRPO
hyper-parameters and its released code's `GRPOTrainerWithBuffer` is not documented; `loss.grpo_beta` 0.04 and
`loss.grpo_epsilon` 0.2 are TRL's long-standing defaults.

`apply_method` writes the method's loss and negatives into the config where the recipe left the defaults,
so the run folder's config.yaml records what was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovip.config import Config, ConfigError, LossConfig


@dataclass(frozen=True)
class Method:
    name: str
    objective: str  # "pairs" (ovip_loss) | "sft" | "grpo"
    rollout: bool = True  # sample k responses per prompt and judge them
    negatives: bool = True  # describe and draw a negative image per pair
    schedule: str = "online"  # online (App. F) | offline (after the whole data) | rounds (every 1/rounds)


METHODS = {
    "ovip": Method("ovip", "pairs"),
    "dpo-online": Method("dpo-online", "pairs", negatives=False),
    "ovip-offline": Method("ovip-offline", "pairs", schedule="offline"),
    "dpo": Method("dpo", "pairs", negatives=False, schedule="offline"),
    "dpo-iterative": Method("dpo-iterative", "pairs", negatives=False, schedule="rounds"),
    "mdpo": Method("mdpo", "pairs", schedule="offline"),
    "sft": Method("sft", "sft", rollout=False, negatives=False),
    "grpo": Method("grpo", "grpo", negatives=False),
}


def method_of(cfg: Config) -> Method:
    return METHODS[cfg.train.method]


def apply_method(cfg: Config) -> Config:
    """Set the method's loss and negatives where the recipe kept the defaults; a recipe that asks for an image
    loss the method cannot have (no negative images) is a ConfigError."""
    m = method_of(cfg)
    loss_default = LossConfig()
    if m.objective == "pairs" and not m.negatives:
        if cfg.loss.image not in (loss_default.image, "none"):
            raise ConfigError(
                f"loss.image: {cfg.train.method} has no negative images; {cfg.loss.image!r} needs them"
            )
        cfg.loss.image = "none"
    if m.name == "mdpo":
        if cfg.loss.image == loss_default.image:
            cfg.loss.image = "base"  # mDPO's conditional preference, with the crop as the worse image
        if cfg.loss.anchor_weight == loss_default.anchor_weight:
            cfg.loss.anchor_weight = 1.0  # mDPO's anchor, delta 0
        if (
            cfg.negatives.kind != "random"
        ):  # mDPO's negative is a crop of I+ (random images kept as an ablation)
            cfg.negatives.kind = "crop"
    return cfg
