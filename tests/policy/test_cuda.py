"""The CUDA / bf16 paths of the policy layer (opt-in: pytest -m gpu)."""

import pytest
import torch
from PIL import Image
from tiny_qwen import tiny_qwen2_vl

from ovip.policy.batch import Condition
from ovip.policy.logprobs import sequence_logps
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.rollout import sample
from ovip.policy.tiny import tiny_llava

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CONDS = [
    Condition(Image.new("RGB", (32, 32), (200, 10, 10)), "is there a red cube ?", "yes , a red cube ."),
    Condition(None, "is there a red cube ?", "yes"),
    Condition(Image.new("RGB", (40, 24), (10, 200, 10)), "what color is the ball ?", "the ball is green ."),
]


@pytest.mark.parametrize("build", [tiny_llava, tiny_qwen2_vl], ids=["llava", "qwen2_vl"])
def test_cuda_logps_match_cpu_and_bf16_is_close(build):
    model, processor = build()
    with torch.no_grad():
        cpu = sequence_logps(model, processor, CONDS).logps
        model.to("cuda")
        gpu = sequence_logps(model, processor, CONDS).logps
        singles = torch.cat([sequence_logps(model, processor, [c]).logps for c in CONDS])
        model.to(torch.bfloat16)
        bf16 = sequence_logps(model, processor, CONDS).logps
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)
    torch.testing.assert_close(gpu, singles, atol=1e-4, rtol=0)
    assert bf16.dtype == torch.float32  # log_softmax is taken in fp32 even for bf16 logits
    torch.testing.assert_close(bf16.cpu(), cpu, atol=0.5, rtol=0.05)


@pytest.mark.parametrize("build", [tiny_llava, tiny_qwen2_vl], ids=["llava", "qwen2_vl"])
def test_cuda_bf16_rollout_and_lora_step(build):
    model, processor = build()
    model.to("cuda", torch.bfloat16)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    images = [c.image for c in CONDS if c.image is not None]
    groups = sample(
        policy.model, processor, images, ["describe this picture ."] * 2, k=4, max_new_tokens=5, seeds=[0, 1]
    )
    assert [len(g) for g in groups] == [4, 4]
    with policy.reference() as ref:
        base = sequence_logps(ref, processor, CONDS).logps
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-2)
    for _ in range(3):
        loss = -sequence_logps(policy.model, processor, CONDS).logps.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = sequence_logps(policy.model, processor, CONDS).logps
    with policy.reference() as ref:
        torch.testing.assert_close(sequence_logps(ref, processor, CONDS).logps, base)
    assert float((after - base).mean()) > 0
