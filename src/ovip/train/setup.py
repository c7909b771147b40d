"""Build the loop's parts from a Config: policy, data, judge, describer, negative-image synthesizer.

`model.path: world`, `train.data: world`, `judge.kind: world` ... select the built-in world's parts; anything
else selects the real backends (HF VLM + PEFT, OpenAI-compatible judge/describer, diffusers).
"""

from __future__ import annotations

import os
from pathlib import Path

from ovip.config import Config, ConfigError
from ovip.policy.model import LoraSpec, Policy
from ovip.records import Describer, Example, ImageSynthesizer, Judge


def world_config(cfg: Config):
    from ovip.world.config import WorldConfig

    try:
        return WorldConfig(**cfg.world)
    except TypeError as e:
        raise ConfigError(f"world: {e}") from None


def model_path(cfg: Config) -> str:
    """The policy's weights: the built-in world's pretrained tiny VLM (built and cached on first use) or a path."""
    if cfg.model.path != "world":
        return cfg.model.path
    from ovip.world.build import ensure_base_model

    return str(ensure_base_model(world_cache(cfg), world_config(cfg)))


def world_cache(cfg: Config) -> Path:
    """Where the world's splits and base model are cached: $OVIP_CACHE, else ~/.cache/ovip."""
    return Path(os.environ.get("OVIP_CACHE", Path.home() / ".cache" / "ovip"))


def build_policy(cfg: Config) -> Policy:
    m = cfg.model
    lora = LoraSpec(r=m.lora_r, alpha=m.lora_alpha, dropout=m.lora_dropout, target_modules=m.lora_target)
    if m.adapter:
        return Policy.from_pretrained(model_path(cfg), dtype=m.dtype, device=m.device, adapter=m.adapter)
    return Policy.from_pretrained(model_path(cfg), dtype=m.dtype, device=m.device, finetune=m.finetune, lora=lora)


def world_splits(cfg: Config, splits=None) -> dict[str, Path]:
    """The world's splits as data.jsonl + PNG folders (written on first use, then reused)."""
    from ovip.world.build import build_world

    wc = world_config(cfg)
    return build_world(world_cache(cfg) / f"world-{wc.fingerprint()}", wc, splits=splits)


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
            raise ValueError(f"invalid training data in {path} (use --train.skip_invalid true to skip and count):\n"
                             f"{report.format()}")
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

    return OpenAIJudge(base_url=j.base_url, model=j.model, api_key_env=j.api_key_env, temperature=j.temperature,
                       timeout=j.timeout, max_retries=j.max_retries, concurrency=j.max_concurrency)


def build_describer(cfg: Config) -> Describer:
    d = cfg.describer
    if d.kind == "world":
        from ovip.world.judge import WorldDescriber

        return WorldDescriber()
    from ovip.feedback.openai_describer import OpenAIDescriber

    base_url = d.base_url or cfg.judge.base_url
    if not base_url:
        raise ConfigError("describer.base_url: required when describer.kind is openai")
    return OpenAIDescriber(base_url=base_url, model=d.model, api_key_env=d.api_key_env, temperature=d.temperature,
                           top_p=d.top_p, max_tokens=d.max_tokens, timeout=d.timeout, max_retries=d.max_retries,
                           max_concurrency=d.max_concurrency)


def build_synthesizer(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    n = cfg.negatives
    if n.kind == "world":
        from ovip.world.judge import WorldRenderer

        return WorldRenderer(world_config(cfg))
    if n.kind == "diffusion":
        from ovip.negatives.diffusion import DiffusersSynthesizer

        return DiffusersSynthesizer(model=n.model, height=n.height, width=n.width, num_inference_steps=n.steps,
                                    guidance_scale=n.guidance, dtype=n.dtype, device=n.device,
                                    seed=n.seed if n.fixed_seed else None)
    if n.kind == "http":
        from ovip.negatives.http import HttpImageSynthesizer

        return HttpImageSynthesizer(n.base_url, n.model, n.api_key_env, height=n.height, width=n.width,
                                    num_inference_steps=n.steps, guidance_scale=n.guidance,
                                    seed=n.seed if n.fixed_seed else None, timeout=n.timeout,
                                    max_retries=n.max_retries, max_concurrency=n.max_concurrency)
    if n.kind == "crop":
        from ovip.negatives.crop import CropSynthesizer

        return CropSynthesizer()
    from ovip.negatives.random_sample import RandomImageSynthesizer

    return RandomImageSynthesizer([e.image_path for e in examples if e.image_path])
