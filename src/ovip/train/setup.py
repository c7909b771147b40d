"""Build the loop's parts from a Config: policy, data, judge, describer, negative-image synthesizer.

`model.path: world`, `train.data: world`, `judge.kind: world` ... select the built-in world's parts; anything
else selects the real backends (HF VLM + PEFT, OpenAI-compatible judge/describer, diffusers).
"""

from __future__ import annotations

import logging

from ovip.config import Config, ConfigError, check_device
from ovip.policy.model import LoraSpec, Policy, check_model_path
from ovip.records import Describer, Example, ImageSynthesizer, Judge
from ovip.world.resolve import model_path, world_config, world_splits

__all__ = [
    "model_path",
    "world_config",
    "world_splits",
]  # the world's parts, re-exported for the loop's callers
log = logging.getLogger(__name__)


def check_setup(cfg: Config) -> None:
    """Refuse, before anything is loaded, a local model path that does not exist and a CUDA device on a
    machine without CUDA: one line each, naming the key to change."""
    if cfg.model.path != "world":
        check_model_path(cfg.model.path)
    check_device(cfg.model.device, "model.device")
    if cfg.negatives.kind == "diffusion":
        check_device(cfg.negatives.device, "negatives.device")


def build_policy(cfg: Config, device: str | None = None) -> Policy:
    """The policy of `cfg.model`, on `device` (default `model.device`; with several ranks, the rank's own)."""
    m = cfg.model
    check_device(m.device, "model.device")
    device = device or m.device
    lora = LoraSpec(r=m.lora_r, alpha=m.lora_alpha, dropout=m.lora_dropout, target_modules=m.lora_target)
    load = {"dtype": m.dtype, "device": device}
    if m.attn_implementation:
        load["attn_implementation"] = m.attn_implementation
    if m.adapter:
        policy = Policy.from_pretrained(model_path(cfg), adapter=m.adapter, **load)
    else:
        policy = Policy.from_pretrained(model_path(cfg), finetune=m.finetune, lora=lora, **load)
    if m.gradient_checkpointing:  # non-reentrant: works with frozen inputs (LoRA) and under DDP
        policy.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return policy


def check_ranks(cfg: Config, world: int) -> None:
    """What several ranks cannot share: an in-process diffusion model (every rank would load its own on the
    same GPU; serve it once, `ovip serve images`, and use negatives.kind http)."""
    if world == 1:
        return
    if cfg.negatives.kind == "diffusion":
        raise ConfigError(
            f"negatives.kind: diffusion would load the image model in each of the {world} ranks; "
            "serve it once (`ovip serve images`) and set --negatives.kind http --negatives.base_url URL"
        )
    if cfg.rollout.prompts_per_batch % world:
        log.warning(
            "rollout.prompts_per_batch %d is not a multiple of the %d ranks: some ranks sample fewer prompts "
            "per batch and wait for the others",
            cfg.rollout.prompts_per_batch,
            world,
        )


def load_training_examples(cfg: Config):
    """(training examples, CheckReport): bad records refuse the run unless `train.skip_invalid`, which drops
    them by position (of a duplicated id, the first copy stays)."""
    from ovip.data import check_examples, load_examples

    if cfg.train.data == "world":
        path = world_splits(cfg, ["preference"])["preference"] / "data.jsonl"
    else:
        path = cfg.train.data
    examples = load_examples(path)
    report = check_examples(examples, max_pixels=cfg.train.max_image_pixels)
    if not report.ok:
        if not cfg.train.skip_invalid:
            raise ValueError(
                f"invalid training data in {path} (use --train.skip_invalid true to skip and count):\n"
                f"{report.format()}"
            )
        examples = [e for i, e in enumerate(examples) if i not in report.bad_indices]
    if cfg.train.max_examples:
        examples = examples[: cfg.train.max_examples]
    if not examples:
        raise ValueError(f"no usable training examples in {path}")
    return examples, report


def build_judge(cfg: Config) -> Judge:
    j = cfg.judge
    if j.kind == "world":
        from ovip.world.judge import WorldJudge

        return WorldJudge()
    from ovip.feedback.openai_judge import OpenAIJudge

    return OpenAIJudge(
        base_url=j.base_url,
        model=j.model,
        api_key_env=j.api_key_env,
        temperature=j.temperature,
        timeout=j.timeout,
        max_retries=j.max_retries,
        concurrency=j.max_concurrency,
    )


def build_describer(cfg: Config) -> Describer:
    d = cfg.describer
    if d.kind == "world":
        from ovip.world.judge import WorldDescriber

        return WorldDescriber()
    from ovip.feedback.openai_describer import OpenAIDescriber

    base_url = d.base_url or cfg.judge.base_url
    if not base_url:
        raise ConfigError("describer.base_url: required when describer.kind is openai")
    return OpenAIDescriber(
        base_url=base_url,
        model=d.model,
        api_key_env=d.api_key_env,
        temperature=d.temperature,
        top_p=d.top_p,
        max_tokens=d.max_tokens,
        timeout=d.timeout,
        max_retries=d.max_retries,
        max_concurrency=d.max_concurrency,
    )


def build_synthesizer(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    n = cfg.negatives
    if n.kind == "world":
        from ovip.world.judge import WorldRenderer

        return WorldRenderer(world_config(cfg))
    if n.kind == "diffusion":
        from ovip.negatives.diffusion import DiffusersSynthesizer

        check_device(n.device, "negatives.device")

        return DiffusersSynthesizer(
            model=n.model,
            height=n.height,
            width=n.width,
            num_inference_steps=n.steps,
            guidance_scale=n.guidance,
            dtype=n.dtype,
            device=n.device,
            seed=n.seed if n.fixed_seed else None,
        )
    if n.kind == "http":
        from ovip.negatives.http import HttpImageSynthesizer

        return HttpImageSynthesizer(
            n.base_url,
            n.model,
            n.api_key_env,
            height=n.height,
            width=n.width,
            num_inference_steps=n.steps,
            guidance_scale=n.guidance,
            seed=n.seed if n.fixed_seed else None,
            timeout=n.timeout,
            max_retries=n.max_retries,
            max_concurrency=n.max_concurrency,
        )
    if n.kind == "crop":
        from ovip.negatives.crop import CropSynthesizer

        return CropSynthesizer()
    from ovip.negatives.random_sample import RandomImageSynthesizer

    return RandomImageSynthesizer([e.image_path for e in examples if e.image_path])
