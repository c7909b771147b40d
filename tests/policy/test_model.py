"""Policy: LoRA targets, the reference as the disabled adapter, full fine-tune reference copy."""

import torch
from PIL import Image
from tiny_qwen import tiny_qwen2_vl

from ovip.policy.batch import Condition
from ovip.policy.logprobs import sequence_logps
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava

COND = [Condition(Image.new("RGB", (32, 32), (200, 10, 10)), "is there a red cube ?", "yes , a red cube .")]


def test_trainable_parameters_are_exactly_the_language_model_adapters():
    for build in (tiny_llava, tiny_qwen2_vl):
        model, processor = build()
        policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
        names = [n for n, p in policy.model.named_parameters() if p.requires_grad]
        assert names and all("lora_" in n for n in names)
        assert all("language_model" in n for n in names)
        assert not any("vision" in n or "visual" in n for n in names)


def test_reference_is_base_before_training_and_differs_after_update():
    model, processor = tiny_llava()
    with torch.no_grad():
        base = sequence_logps(model, processor, COND).logps
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    with policy.reference() as ref:
        torch.testing.assert_close(sequence_logps(ref, processor, COND).logps, base)
    frozen = {n: p.detach().clone() for n, p in policy.model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD(policy.trainable_parameters(), lr=0.5)
    for _ in range(3):  # lora_B starts at zero: the first step moves B, the next moves the output
        loss = -sequence_logps(policy.model, processor, COND).logps.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = sequence_logps(policy.model, processor, COND).logps
    with policy.reference() as ref:
        ref_after = sequence_logps(ref, processor, COND).logps
    torch.testing.assert_close(ref_after, base)
    assert float(after - base) > 1e-3
    for n, p in policy.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n


def test_full_finetune_keeps_a_frozen_reference_copy_and_reports_its_cost():
    model, processor = tiny_llava()
    policy = Policy(model, processor, finetune="full")
    assert policy.reference_copy_bytes == sum(p.numel() * 4 for p in model.parameters())
    with policy.reference() as ref:
        assert ref is not policy.model
        assert not any(p.requires_grad for p in ref.parameters())
    assert not any(p.requires_grad for n, p in policy.model.named_parameters() if "vision" in n)


def test_a_loaded_adapter_trains_its_lora_weights_and_loads_frozen_for_evaluation(tmp_path):
    """`model.adapter` (training on from a trained adapter) loads it trainable: its LoRA weights and nothing
    else; `finetune="none"` (evaluation) loads it with nothing trainable."""
    model, processor = tiny_llava()
    model.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0)).model.save_pretrained(
        tmp_path / "adapter"
    )
    policy = Policy.from_pretrained(str(tmp_path / "base"), adapter=str(tmp_path / "adapter"))
    names = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and "language_model" in n for n in names)
    frozen = Policy.from_pretrained(
        str(tmp_path / "base"), adapter=str(tmp_path / "adapter"), finetune="none"
    )
    assert not frozen.trainable_parameters()
