"""A non-finite loss or gradient is never applied: the step is skipped and counted, and a streak of them stops
the run with a checkpoint. Updates run on a tiny random LLaVA with hand-made experiences whose reference
log-probs are 0 (finite loss) or NaN (the loss of that experience, and so of the step, is NaN)."""

import json
import math

import pytest
import torch
from PIL import Image

from ovip.config import Config, TrainConfig
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import CONDITIONS
from ovip.records import PairExperience as Experience
from ovip.train import checkpoint
from ovip.train.counters import NonFiniteTraining
from ovip.train.loop import OnlineTrainer


def experience(tmp_path, reference: float) -> Experience:
    image, negative = tmp_path / "pos.png", tmp_path / "neg.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    Image.new("RGB", (32, 32), (10, 10, 200)).save(negative)
    return Experience(
        example_id="e",
        query="describe this image .",
        image_path=str(image),
        negative_image_path=str(negative),
        chosen="a red cube .",
        rejected="a blue ball .",
        chosen_score=9.0,
        rejected_score=1.0,
        fallback=False,
        description="a blue ball .",
        reference_logps={name: reference for name in CONDITIONS},
    )


@pytest.fixture
def trainer(tmp_path):
    model, processor = tiny_llava()
    torch.manual_seed(0)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    cfg = Config(
        train=TrainConfig(lr=1e-2, batch_size=2, micro_batch_size=2, save_every=0, max_nonfinite_steps=3)
    )
    return OnlineTrainer(cfg, policy, [], None, None, None, tmp_path / "run")


def weights(trainer):
    return {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters() if p.requires_grad}


def update(trainer, *references):
    trainer.buffer.add([experience(trainer.run_dir.parent, r) for r in references])
    return trainer.update()


def test_a_nonfinite_step_is_skipped_counted_and_logged(trainer):
    first = weights(trainer)
    assert update(trainer, 0.0, 0.0)["train/nonfinite_steps"] == 0
    good = weights(trainer)
    assert any(not torch.equal(first[n], good[n]) for n in good)  # a finite step moves the LoRA weights

    metrics = update(trainer, 0.0, math.nan)  # one NaN experience makes the whole step's loss NaN
    assert metrics["train/nonfinite_steps"] == 1 and metrics["loss"] is None
    after = weights(trainer)
    assert all(torch.equal(good[n], after[n]) for n in good)  # used to be NaN everywhere
    assert all(torch.isfinite(p).all() for p in after.values())

    # A NaN gradient with a finite loss is caught as well (a hook turns one LoRA gradient into NaN).
    lora = next(p for n, p in trainer.policy.model.named_parameters() if "lora_B" in n)
    hook = lora.register_hook(lambda grad: grad * math.nan)
    metrics = update(trainer, 0.0, 0.0)
    hook.remove()
    assert metrics["loss"] is not None and metrics["grad_norm"] is None
    assert metrics["train/nonfinite_steps"] == 2 and all(
        torch.equal(good[n], v) for n, v in weights(trainer).items()
    )

    update(trainer, 0.0, 0.0)  # a finite step ends the streak
    assert trainer.counters.nonfinite_streak == 0 and trainer.counters.nonfinite_steps == 2
    lines = (trainer.run_dir / "metrics.jsonl").read_text().splitlines()
    strict = [
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in metrics.jsonl"))
        for line in lines
    ]
    assert [m["train/nonfinite_steps"] for m in strict] == [0, 1, 2, 2]


def test_a_streak_of_nonfinite_steps_stops_the_run_with_a_checkpoint(trainer):
    update(trainer, 0.0, 0.0)
    good = weights(trainer)
    update(trainer, math.nan, 0.0)
    update(trainer, math.nan, math.nan)
    with pytest.raises(NonFiniteTraining, match=r"3 updates in a row .*\(train.max_nonfinite_steps=3\)"):
        update(trainer, math.nan, 0.0)
    saved = checkpoint.latest(trainer.run_dir)
    assert saved is not None and json.loads((saved / "state.json").read_text())["step"] == 4
    assert all(torch.equal(good[n], v) for n, v in weights(trainer).items())
