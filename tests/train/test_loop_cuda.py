"""The online loop on CUDA in bf16 with the world's judge, describer and renderer (opt-in: pytest -m gpu)."""

import json

import pytest
import torch
from PIL import Image

from ovip.config import Config, RolloutConfig, TrainConfig
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.train.loop import OnlineTrainer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_online_steps_on_cuda_bf16(tmp_path):
    from ovip.config.world import WorldConfig
    from ovip.world.judge import WorldDescriber, WorldJudge, WorldRenderer

    model, processor = tiny_llava()
    model.to("cuda", torch.bfloat16)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    examples = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (32, 32), (60 * i, 100, 150)).save(path)
        examples.append(
            Example(
                id=str(i),
                query="describe this image .",
                reference="a red cube and a blue ball .",
                image_path=str(path),
            )
        )
    cfg = Config(
        rollout=RolloutConfig(k=4, max_new_tokens=6, prompts_per_batch=4),
        train=TrainConfig(lr=1e-2, batch_size=2, micro_batch_size=2, save_every=1),
    )
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}
    trainer = OnlineTrainer(
        cfg, policy, examples, WorldJudge(), WorldDescriber(), WorldRenderer(WorldConfig()), tmp_path / "run"
    )
    summary = trainer.run()
    assert summary["step"] >= 1
    assert any(not torch.equal(p, before[n]) for n, p in policy.model.named_parameters() if p.requires_grad)
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert all(v == v for v in line.values() if isinstance(v, float))  # no NaN in bf16
