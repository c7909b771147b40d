"""Building the policy from the recipe's model keys: attention implementation, gradient checkpointing; and what
several ranks refuse (`ovip.train.setup`)."""

import pytest
import torch

from ovip.config import Config, ConfigError, ModelConfig, NegativesConfig
from ovip.policy.batch import Condition, collate
from ovip.policy.logprobs import batch_logps
from ovip.policy.tiny import tiny_llava
from ovip.train.setup import build_policy, check_ranks


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llava")
    model, processor = tiny_llava()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def gradients(cfg: Config) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """LoRA gradients of one summed log-prob, the model in train mode (where checkpointing applies)."""
    from PIL import Image

    torch.manual_seed(0)
    policy = build_policy(cfg)
    with torch.no_grad():  # LoRA B starts at 0: give A a gradient too
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    policy.model.train()
    image = Image.new("RGB", (32, 32), (200, 10, 10))
    batch = collate(
        policy.processor,
        [Condition(image, "describe this image .", "a red cube ."), Condition(None, "what color ?", "red .")],
    ).to(policy.device)
    batch_logps(policy.model, batch).logps.sum().backward()
    return policy.model, {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.requires_grad}


def test_gradient_checkpointing_gives_the_same_gradients(folder):
    plain = Config(model=ModelConfig(path=str(folder), lora_r=4, lora_alpha=8))
    ckpt = Config(model=ModelConfig(path=str(folder), lora_r=4, lora_alpha=8, gradient_checkpointing=True))
    model_a, a = gradients(plain)
    model_b, b = gradients(ckpt)
    assert not model_a.is_activation_checkpointing and model_b.is_activation_checkpointing
    assert a.keys() == b.keys() and a
    for k in a:  # recomputing the forward in the backward pass changes memory, not the gradient
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_attn_implementation_reaches_the_model(folder, kernel):
    policy = build_policy(
        Config(model=ModelConfig(path=str(folder), lora_r=4, lora_alpha=8, attn_implementation=kernel))
    )
    assert policy.model.config.text_config._attn_implementation == kernel


def test_ranks_refuse_an_in_process_diffusion_model():
    cfg = Config(negatives=NegativesConfig(kind="diffusion"))
    check_ranks(cfg, 1)  # one process may load it
    with pytest.raises(ConfigError, match="negatives.kind: diffusion .* 2 ranks.*negatives.kind http"):
        check_ranks(cfg, 2)


def test_the_train_path_warns_of_nothing_deprecated(folder, tmp_path):
    """Building the policy (LoRA, gradient checkpointing on), one optimizer step, saving the adapter and loading
    it again as `ovip eval --adapter` does: no FutureWarning or DeprecationWarning from transformers or peft
    (peft's constructor read transformers' deprecated `is_gradient_checkpointing`, printed at every start)."""
    import warnings

    from ovip.policy.model import Policy

    cfg = Config(model=ModelConfig(path=str(folder), lora_r=4, lora_alpha=8, gradient_checkpointing=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, grads = gradients(cfg)
        torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3).step()
        model.save_pretrained(tmp_path / "adapter")
        loaded = Policy.from_pretrained(str(folder), adapter=str(tmp_path / "adapter"))
    assert grads and hasattr(loaded.model, "peft_config")
    deprecated = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if issubclass(w.category, (FutureWarning, DeprecationWarning))
    ]
    assert deprecated == []
