"""Log-probs: the batched, left-padded, logits_to_keep path against the naive oracle."""

import pytest
import torch
from PIL import Image
from tiny_qwen import tiny_qwen2_vl

from ovip.policy.batch import Condition, collate, prompt_text
from ovip.policy.logprobs import sequence_logps
from ovip.policy.tiny import tiny_llava

BUILDERS = {"llava": tiny_llava, "qwen2_vl": tiny_qwen2_vl}


def conditions():
    red = Image.new("RGB", (32, 32), (200, 10, 10))
    green = Image.new("RGB", (40, 24), (10, 200, 10))
    return [
        Condition(red, "is there a red cube ?", "yes , a red cube ."),
        Condition(None, "is there a red cube ?", "yes"),
        Condition(green, "what color is the ball ?", "the ball is green and small ."),
        Condition(red, "describe this image .", "a red cube on the left of a small ball ."),
    ]


def naive_logps(model, processor, c: Condition) -> float:
    """Oracle: unpadded full forward, gather(log_softmax) over the response positions, summed."""
    batch = collate(processor, [c])  # one row: no padding
    ids = batch.inputs["input_ids"][0]
    logits = model(**batch.inputs).logits[0].float()
    logp = torch.log_softmax(logits[:-1], -1).gather(-1, ids[1:, None]).squeeze(-1)
    return float(logp[batch.response_mask[0, 1:]].sum())


@pytest.fixture(params=sorted(BUILDERS), scope="module")
def tiny(request):
    return BUILDERS[request.param]()


@torch.no_grad()
def test_batched_equals_naive_oracle(tiny):
    model, processor = tiny
    conds = conditions()
    batched = sequence_logps(model, processor, conds).logps
    oracle = torch.tensor([naive_logps(model, processor, c) for c in conds])
    torch.testing.assert_close(batched, oracle, atol=1e-5, rtol=0)


@torch.no_grad()
def test_batched_equals_one_at_a_time(tiny):
    model, processor = tiny
    conds = conditions()
    batched = sequence_logps(model, processor, conds)
    singles = torch.cat([sequence_logps(model, processor, [c]).logps for c in conds])
    torch.testing.assert_close(batched.logps, singles, atol=1e-5, rtol=0)
    micro = sequence_logps(model, processor, conds, micro_batch_size=3).logps
    torch.testing.assert_close(micro, singles, atol=1e-5, rtol=0)


def test_response_token_count_includes_end_of_turn(tiny):
    model, processor = tiny
    c = Condition(None, "is there a red cube ?", "yes , a red cube .")
    n_words = len(c.response.split())
    assert int(sequence_logps(model, processor, [c]).token_counts[0]) == n_words + 1


def test_drop_removes_image_tokens_and_blank_keeps_them(tiny):
    model, processor = tiny
    image_id = model.config.image_token_id
    c = Condition(None, "is there a red cube ?", "yes")
    dropped = collate(processor, [c], no_image="drop")
    blank = collate(processor, [c], no_image="blank")
    assert int((dropped.inputs["input_ids"] == image_id).sum()) == 0
    assert "pixel_values" not in dropped.inputs
    assert int((blank.inputs["input_ids"] == image_id).sum()) > 0
    assert "<image>" not in prompt_text(processor, c.query, False)


def test_too_long_is_an_error_not_a_truncation(tiny):
    model, processor = tiny
    with pytest.raises(ValueError, match="image tokens"):
        collate(processor, conditions()[:1], max_length=8)


def test_gradients_flow(tiny):
    model, processor = tiny
    out = sequence_logps(model, processor, conditions()[:2])
    out.logps.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    model.zero_grad(set_to_none=True)
