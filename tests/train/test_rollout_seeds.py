"""The loop samples each prompt from `prompt_seed(train.seed, its position in the data order)`: its k samples
are the same whatever the rollout batch size, and differ between epochs (another position)."""

import torch
from PIL import Image

from ovip.config import Config, RolloutConfig, TrainConfig
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.rollout import prompt_seed, sample
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.train.loop import OnlineTrainer


def examples(tmp_path, n=5):
    out = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (32, 32), (50 * i % 255, 100, 200 - 30 * i)).save(path)
        query = "describe this image ." if i % 2 else "what color is the big ball on the left ?"
        out.append(Example(id=f"ex{i}", query=query, reference="a red cube .", image_path=str(path)))
    return out


def samples_by_position(policy, data, run_dir, prompts_per_batch: int) -> dict[int, list[str]]:
    cfg = Config(
        rollout=RolloutConfig(k=3, max_new_tokens=5, prompts_per_batch=prompts_per_batch),
        train=TrainConfig(batch_size=2, micro_batch_size=2, epochs=2, seed=7),
    )
    trainer = OnlineTrainer(cfg, policy, data, None, None, None, run_dir)
    out = {}
    for start in range(0, trainer.total_prompts, prompts_per_batch):
        batch = trainer.sample_batch(start).result()
        out.update({start + i: group for i, group in enumerate(batch.groups)})
    return out


def test_a_prompts_samples_depend_on_its_position_not_on_the_batch_size(tmp_path):
    model, processor = tiny_llava()
    torch.manual_seed(0)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    policy.model.eval()
    data = examples(tmp_path)
    by_two = samples_by_position(policy, data, tmp_path / "two", 2)
    by_three = samples_by_position(policy, data, tmp_path / "three", 3)
    assert sorted(by_two) == list(range(10))
    assert by_two == by_three
    # the same example in epoch 2 (position 5 + i) is another prompt position: other samples
    assert all(by_two[i] != by_two[5 + i] for i in range(5))
    # and position 6 alone, with its seed, is what the loop sampled there
    image = Image.open(data[1].image_path).convert("RGB")
    (alone,) = sample(
        policy.model, processor, [image], [data[1].query], k=3, max_new_tokens=5, seeds=[prompt_seed(7, 6)]
    )
    assert alone == by_two[6]
