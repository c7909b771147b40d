"""Rollout: k samples per prompt, batched, each prompt from its own seed (the same alone or in any batch),
image encoded once per prompt; the sampler's warping and inverse-CDF draw against transformers and hand-worked
numbers; the recorded log-probs against a teacher-forced forward."""

import pytest
import torch
from PIL import Image
from tiny_qwen import tiny_qwen2_vl
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from ovip.policy.batch import prompt_inputs, prompt_text
from ovip.policy.rollout import generate_samples, prompt_seed, row_seed, sample, sample_tokens, warp
from ovip.policy.tiny import tiny_llava

BUILDERS = {"llava": tiny_llava, "qwen2_vl": tiny_qwen2_vl}


@pytest.fixture(params=sorted(BUILDERS), scope="module")
def tiny(request):
    return BUILDERS[request.param]()


def inputs():
    return [
        Image.new("RGB", (32, 32), (200, 10, 10)),
        Image.new("RGB", (32, 32), (0, 0, 250)),
        Image.new("RGB", (32, 32), (30, 160, 40)),
    ], [
        "describe this image .",
        "what color is the ball ?",
        "how many cats are there in this picture , and what color is the big tree on the left ?",
    ]


def test_k_samples_per_prompt_and_reproducible(tiny):
    model, processor = tiny
    images, queries = inputs()
    a = sample(model, processor, images, queries, k=4, max_new_tokens=6, seeds=[3, 4, 5])
    b = sample(model, processor, images, queries, k=4, max_new_tokens=6, seeds=[3, 4, 5])
    c = sample(model, processor, images, queries, k=4, max_new_tokens=6, seeds=[6, 7, 8])
    assert [len(group) for group in a] == [4, 4, 4]
    assert a == b
    assert a != c
    assert len(set(a[0])) > 1  # the k samples of a prompt are not copies of one another
    with pytest.raises(ValueError, match="2 seeds for 3 queries: give one seed per prompt"):
        sample(model, processor, images, queries, k=4, seeds=[1, 2])


def test_a_prompts_samples_do_not_depend_on_the_other_prompts_of_its_call(tiny):
    """Alone, batched with prompts of other lengths (so padded differently), or in another order: a prompt
    with the same seed gets the same k samples, token for token."""
    model, processor = tiny
    images, queries = inputs()
    seeds = [prompt_seed(3, i) for i in range(3)]
    run = lambda idx: generate_samples(  # noqa: E731
        model, processor, [images[i] for i in idx], [queries[i] for i in idx], k=4, max_new_tokens=8,
        seeds=[seeds[i] for i in idx],
    )  # fmt: skip
    batched = run([0, 1, 2])
    alone = [run([i])[0] for i in range(3)]
    reordered = run([2, 0, 1])
    ids = lambda group: [s.token_ids for s in group]  # noqa: E731
    assert [ids(g) for g in batched] == [ids(g) for g in alone]
    assert [ids(g) for g in reordered] == [ids(batched[2]), ids(batched[0]), ids(batched[1])]
    for got, want in zip(batched, alone, strict=True):
        for s, t in zip(got, want, strict=True):
            assert s.logprobs == pytest.approx(t.logprobs, abs=1e-5)


def test_a_shorter_limit_gives_a_prefix_of_the_same_samples(tiny):
    """A row's uniforms are one stream, so max_new_tokens only decides where it stops."""
    model, processor = tiny
    images, queries = inputs()
    short = generate_samples(model, processor, images, queries, k=3, max_new_tokens=3, seeds=[1, 2, 3])
    long = generate_samples(model, processor, images, queries, k=3, max_new_tokens=8, seeds=[1, 2, 3])
    for group_short, group_long in zip(short, long, strict=True):
        for s, t in zip(group_short, group_long, strict=True):
            assert t.token_ids[: len(s.token_ids)] == s.token_ids


def test_warp_is_transformers_temperature_then_top_p():
    torch.manual_seed(0)
    scores = torch.randn(64, 50) * 3
    scores[:, 7] = scores[:, 8]  # ties at the top-p boundary are cut alike
    for temperature, top_p in ((1.2, 0.8), (0.1, 0.8), (1.0, 0.95), (2.0, 1.0)):
        warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)])
        want = warpers(None, scores.clone())
        assert torch.equal(warp(scores, temperature, top_p), want)


def test_sample_tokens_is_the_inverse_cdf_of_the_probabilities():
    """Probabilities (0.1, 0, 0.2, 0.3, 0.4): cumulative 0.1, 0.1, 0.3, 0.6, 1.0. The uniform u picks the
    first token whose cumulative sum exceeds u: u in [0, 0.1) -> 0, [0.1, 0.3) -> 2, [0.3, 0.6) -> 3,
    [0.6, 1) -> 4; token 1 (probability 0) is never taken, not even at u = 0.1 exactly. A grid of 1000
    uniforms gives each token its probability's share, to the grid's resolution."""
    probs = torch.tensor([0.1, 0.0, 0.2, 0.3, 0.4])
    scores = probs.log()  # log 0 = -inf, as a top-p-filtered token
    u = torch.tensor([0.0, 0.05, 0.1, 0.2999, 0.3, 0.59, 0.6, 0.99, 1 - 2**-24])
    got = sample_tokens(scores.expand(len(u), -1), u)
    assert got.tolist() == [0, 0, 2, 2, 3, 3, 4, 4, 4]
    grid = (torch.arange(1000) + 0.5) / 1000
    counts = torch.bincount(sample_tokens(scores.expand(1000, -1), grid), minlength=5)
    assert counts.tolist() == [100, 0, 200, 300, 400]
    # a row whose last tokens are filtered: a uniform within float epsilon of 1 still lands on a kept token
    tail = torch.tensor([[0.0, 0.0, -torch.inf, -torch.inf]])
    assert sample_tokens(tail, torch.tensor([1 - 2**-24])).tolist() == [1]


def test_row_seeds_are_distinct_and_stable():
    assert row_seed(5, 0) == 1928520522024765805  # BLAKE2b-64 of "5:0", little-endian
    seeds = {row_seed(s, j) for s in range(100) for j in range(16)}
    assert len(seeds) == 1600
    assert prompt_seed(3, 10) == 3 * 1_000_003 + 10


def test_logprobs_are_the_models_own_at_temperature_1(tiny):
    """Each recorded log-prob equals log_softmax of a teacher-forced forward over prompt + sampled tokens, at
    the sampled position: the model's own distribution, not the temperature-1.2, top-p-0.8 one it drew
    from."""
    model, processor = tiny
    images, queries = inputs()
    (group,) = generate_samples(model, processor, images[:1], queries[:1], k=2, max_new_tokens=6, seeds=[9])
    prompt = processor(
        text=[prompt_text(processor, queries[0], True)], images=[images[0]], return_tensors="pt"
    )
    for s in group:
        ids = torch.cat([prompt["input_ids"], torch.tensor([s.token_ids])], dim=1)
        n = prompt["input_ids"].shape[1]
        extra = {k: v for k, v in prompt.items() if k not in ("input_ids", "attention_mask")}
        if "mm_token_type_ids" in extra:  # Qwen2-VL marks image tokens per position: the answer's are text
            extra["mm_token_type_ids"] = torch.nn.functional.pad(
                extra["mm_token_type_ids"], (0, len(s.token_ids))
            )
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0]
        want = torch.log_softmax(logits[n - 1 : -1].float(), dim=-1).gather(
            1, torch.tensor(s.token_ids)[:, None]
        )
        assert s.logprobs == pytest.approx(want.squeeze(1).tolist(), abs=1e-4)
        assert s.prompt_tokens == n and len(s.logprobs) == len(s.token_ids) >= 1


def test_image_encoded_once_per_prompt(tiny):
    model, processor = tiny
    tower = model.model.vision_tower if hasattr(model.model, "vision_tower") else model.model.visual
    seen = []
    handle = tower.register_forward_hook(lambda mod, args, kwargs_out: seen.append(1))
    try:
        images, queries = inputs()
        sample(model, processor, images[:2], queries[:2], k=8, max_new_tokens=4, seeds=[0, 1])
    finally:
        handle.remove()
    assert len(seen) == 1  # one batched encoder call for both prompts, not 2 * 8


def test_greedy_needs_k_1_and_is_transformers_greedy(tiny):
    model, processor = tiny
    images, queries = inputs()
    with pytest.raises(ValueError, match="k=1"):
        sample(model, processor, images, queries, k=2, do_sample=False)
    out = generate_samples(model, processor, images, queries, k=1, do_sample=False, max_new_tokens=4)
    batch = prompt_inputs(processor, images, queries)
    plain = model.generate(
        **batch, do_sample=False, max_new_tokens=4, pad_token_id=processor.tokenizer.pad_token_id
    )
    new = plain[:, batch["input_ids"].shape[1] :].tolist()
    for (s,), row in zip(out, new, strict=True):
        assert list(s.token_ids) == row[: len(s.token_ids)]
