"""A rank of the distributed tests (`tests/train/test_distributed.py`), run as `python dist_worker.py MODE OUT` for one
process or under `accelerate launch --num_processes 2` for two; the rank's results go to OUT.

step    one `OnlineTrainer.update` over the same 4 experiences (a tiny random LLaVA, LoRA B perturbed so that every
        LoRA weight has a gradient): prompt-order experience i is on rank i % world. Rank 0 saves the gradients
        AdamW received, the LoRA weights after the step and the step's metrics to OUT/step.pt.
budget  a short online run over 8 prompts whose judge fails on rank 1 only (error budget: 2 failures in 2 calls):
        every rank must stop with ServiceFailure and one checkpoint; each writes its message to OUT/rank-R.txt.
"""

import sys
from pathlib import Path

import torch
from PIL import Image

from ovip.config import Config, RolloutConfig, TrainConfig
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.records import PairExperience as Experience
from ovip.train.counters import ServiceFailure
from ovip.train.distributed import Ranks, shutdown
from ovip.train.loop import OnlineTrainer

COLORS = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (200, 200, 10), (10, 200, 200)]
ANSWERS = ["a red cube .", "a blue ball .", "two green trees .", "a small cat and a dog .", "no house ."]


def policy() -> Policy:
    model, processor = tiny_llava()
    torch.manual_seed(0)
    out = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # LoRA B starts at 0, which leaves A without a gradient: give every weight one
        for name, p in out.model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=generator))
    return out


def image(out: Path, i: int) -> str:
    path = out / f"image-{i}.png"
    Image.new("RGB", (32, 32), COLORS[i % len(COLORS)]).save(path)
    return str(path)


def step(out: Path, ranks: Ranks) -> None:
    cfg = Config(train=TrainConfig(lr=1e-3, batch_size=4, micro_batch_size=1, save_every=0, seed=0))
    trainer = OnlineTrainer(cfg, policy(), [], None, None, None, out / "run", ranks=ranks)
    experiences = [
        Experience(
            example_id=f"e{i}",
            query="describe this image .",
            image_path=image(out, i),
            negative_image_path=image(out, i + 1),
            chosen=ANSWERS[i],
            rejected=ANSWERS[(i + 2) % len(ANSWERS)],
            chosen_score=9.0,
            rejected_score=1.0,
            fallback=False,
            description="",
            reference_logps={},
        )
        for i in range(4)
    ]
    trainer.images.ensure(p for e in experiences for p in e.image_paths)
    trainer.reference_logps(experiences)  # the disabled adapter's log-probs: the same on every rank
    trainer.buffer.add([e for i, e in enumerate(experiences) if i % ranks.world == ranks.rank])
    names = {id(p): n for n, p in trainer.policy.model.named_parameters() if p.requires_grad}
    grads = {}
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: grads.update(
            {names[id(p)]: p.grad.detach().clone() for group in opt.param_groups for p in group["params"]}
        )
    )
    metrics = trainer.update()
    weights = {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters() if p.requires_grad}
    if ranks.main:
        torch.save({"grads": grads, "weights": weights, "metrics": metrics}, out / "step.pt")


class FailingJudge:
    """A judge whose every call fails (as a client returns a refused connection)."""

    def judge(self, query, responses, reference):
        raise ConnectionError("connection refused")


def budget(out: Path, ranks: Ranks) -> None:
    from ovip.config.world import WorldConfig
    from ovip.world.judge import WorldDescriber, WorldJudge, WorldRenderer

    examples = [
        Example(
            id=str(i),
            query="describe this image .",
            reference="a red cube and a blue ball .",
            image_path=image(out, i),
        )
        for i in range(8)
    ]
    cfg = Config(
        rollout=RolloutConfig(k=2, max_new_tokens=4, prompts_per_batch=2),
        train=TrainConfig(
            lr=1e-3, batch_size=2, micro_batch_size=1, save_every=0, max_failure_rate=0.5, failure_window=2
        ),
    )
    judge = FailingJudge() if ranks.rank == 1 else WorldJudge()
    trainer = OnlineTrainer(
        cfg,
        policy(),
        examples,
        judge,
        WorldDescriber(),
        WorldRenderer(WorldConfig()),
        out / "run",
        ranks=ranks,
    )
    try:
        trainer.run()
        message = "finished"
    except ServiceFailure as e:
        message = f"ServiceFailure: {e}"
    (out / f"rank-{ranks.rank}.txt").write_text(message)


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    ranks = Ranks.start("cpu", timeout=120)
    try:
        {"step": step, "budget": budget}[mode](out, ranks)
    finally:
        shutdown(finished=True)  # both modes end on every rank together
