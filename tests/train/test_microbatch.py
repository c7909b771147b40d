"""One optimizer step's gradient does not depend on how the step is cut into micro-batches, for every method.

A step of N = 16 experiences (of the method's own kind, on a tiny random LLaVA with a LoRA of rank 4) is taken
at `train.micro_batch_size` 1, 4 and 16 from the same weights; the gradients the optimizer receives agree to
1e-6 relative. Every loss is a per-example mean over the step (pairs, SFT), a mean over the step's tokens
(GRPO's "dapo", the default; its "grpo" and "dr_grpo" forms too), or uses a statistic of the whole step (KTO's
reference point z0), never one of a micro-batch.
"""

import pytest
import torch
from PIL import Image

from ovip.config import load
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import AnswerExperience, PairExperience, SampleExperience
from ovip.train.loop import OnlineTrainer
from ovip.train.methods import METHODS

ANSWERS = [
    "a red cube .",
    "a blue ball .",
    "two green trees .",
    "no .",
    "yes , there is a cat .",
    "a big dog .",
]


def images(tmp_path) -> list[str]:
    paths = []
    for i in range(6):
        path = tmp_path / f"image-{i}.png"
        Image.new("RGB", (32, 32), (40 * i, 200 - 30 * i, 90)).save(path)
        paths.append(str(path))
    return paths


def batch(kind: str, paths: list[str]) -> list:
    """16 experiences of one kind, with answers of different lengths (so padding and token counts vary)."""
    out = []
    for i in range(16):
        image, query = paths[i % 6], "describe this image ." if i % 2 else "what color is the cube ?"
        chosen, rejected = ANSWERS[i % 6], ANSWERS[(i + 3) % 6]
        if kind == "pair":
            out.append(
                PairExperience(
                    f"e{i}", query, image, paths[(i + 1) % 6], chosen, rejected, 9.0, 1.0, False, "", {}, 0, i
                )
            )
        elif kind == "sample":
            out.append(
                SampleExperience(f"e{i}", query, image, chosen, float(i % 10), (-1.0) ** i * (0.5 + i / 10))
            )
        else:
            out.append(AnswerExperience(f"e{i}", query, image, chosen))
    return out


def step_gradients(method: str, micro: int, tmp_path, overrides=()) -> dict[str, torch.Tensor]:
    cfg = load(None, ["--train.method", method, "--train.batch_size", "16", "--train.micro_batch_size", str(micro),
                      "--train.lr", "1e-3", "--train.save_every", "0", "--rollout.max_new_tokens", "8", *overrides])  # fmt: skip
    from ovip.train.methods import apply_method

    apply_method(cfg)
    model, processor = tiny_llava()
    torch.manual_seed(0)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    with (
        torch.no_grad()
    ):  # LoRA starts at B = 0 (policy == reference); move it so that every term has a gradient
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.05)
    trainer = OnlineTrainer(cfg, policy, [], None, None, None, tmp_path / f"run-{method}-{micro}")
    kind = {"Pairs": "pair", "GRPO": "sample", "KTO": "sample", "SFT": "answer"}[
        type(trainer.objective).__name__
    ]
    experiences = batch(kind, images(tmp_path))
    trainer.images.ensure(p for e in experiences for p in e.image_paths)
    if trainer.objective.reference_conditions:
        trainer.reference_logps(experiences)
    trainer.buffer.add(experiences)
    names = {id(p): n for n, p in policy.model.named_parameters() if p.requires_grad}
    grads = {}
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: grads.update(
            {names[id(p)]: p.grad.detach().clone() for g in opt.param_groups for p in g["params"]}
        )
    )
    trainer.update()
    return grads


CASES = [(m, ()) for m in METHODS] + [
    ("grpo", ("--loss.grpo_loss_type", "grpo")),
    ("grpo", ("--loss.grpo_loss_type", "dr_grpo")),
    ("ovip", ("--loss.beta2", "0.2", "--loss.sft_weight", "0.5")),  # Eq. 5's image-free term and an NLL term
    ("ovip", ("--loss.image", "sym", "--loss.bi_anchor_weight", "0.3")),
]


@pytest.mark.parametrize("method, overrides", CASES, ids=[f"{m}{''.join(o)}" for m, o in CASES])
def test_one_step_has_the_same_gradient_at_every_micro_batch_size(method, overrides, tmp_path):
    steps = {micro: step_gradients(method, micro, tmp_path, overrides) for micro in (16, 4, 1)}
    full = torch.cat([g.flatten() for g in steps[16].values()])
    assert float(full.norm()) > 0
    for micro in (4, 1):
        other = torch.cat([steps[micro][n].flatten() for n in steps[16]])
        assert float((other - full).norm() / full.norm()) < 1e-6, (method, overrides, micro)
