"""Rollout: k samples per prompt, batched, reproducible, image encoded once per prompt."""

import pytest
from PIL import Image
from tiny_qwen import tiny_qwen2_vl

from ovip.policy.rollout import sample
from ovip.policy.tiny import tiny_llava

BUILDERS = {"llava": tiny_llava, "qwen2_vl": tiny_qwen2_vl}


@pytest.fixture(params=sorted(BUILDERS), scope="module")
def tiny(request):
    return BUILDERS[request.param]()


def inputs():
    return [Image.new("RGB", (32, 32), (200, 10, 10)), Image.new("RGB", (32, 32), (0, 0, 250))], [
        "describe this image .",
        "what color is the ball ?",
    ]


def test_k_samples_per_prompt_and_reproducible(tiny):
    model, processor = tiny
    images, queries = inputs()
    a = sample(model, processor, images, queries, k=4, max_new_tokens=6, seed=3)
    b = sample(model, processor, images, queries, k=4, max_new_tokens=6, seed=3)
    c = sample(model, processor, images, queries, k=4, max_new_tokens=6, seed=4)
    assert [len(group) for group in a] == [4, 4]
    assert a == b
    assert a != c


def test_image_encoded_once_per_prompt(tiny):
    model, processor = tiny
    tower = model.model.vision_tower if hasattr(model.model, "vision_tower") else model.model.visual
    seen = []
    handle = tower.register_forward_hook(lambda mod, args, kwargs_out: seen.append(1))
    try:
        images, queries = inputs()
        sample(model, processor, images, queries, k=8, max_new_tokens=4, seed=0)
    finally:
        handle.remove()
    assert len(seen) == 1  # one batched encoder call for both prompts, not 2 * 8


def test_greedy_needs_k_1(tiny):
    model, processor = tiny
    images, queries = inputs()
    with pytest.raises(ValueError, match="k=1"):
        sample(model, processor, images, queries, k=2, do_sample=False)
    out = sample(model, processor, images, queries, k=1, do_sample=False, max_new_tokens=4)
    assert out == sample(model, processor, images, queries, k=1, do_sample=False, max_new_tokens=4)
