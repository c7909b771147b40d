"""The sources of negative images I- a config can name (`negatives.kind`).

    world      the built-in world's renderer draws the description's scene (`ovip.world.judge.WorldRenderer`)
    diffusion  a `diffusers` text-to-image pipeline in the training process (paper: FLUX.1-dev, B.2)
    http       an OpenAI Images API server (`ovip serve images`, or any that speaks it): remote
    crop       a random crop of I+ (Table 5's "Cropping", mDPO's negative)
    random     another image of the data (Table 5's "Sampling")

A new source is one module (an `ImageSynthesizer`, `ovip.records`) and one line here (and its name in
`ovip.config.sections.NegativesKind`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ovip.config import Config, check_device, registry
from ovip.config.sections import NegativesKind, RemoteNegativesKind
from ovip.records import Example, ImageSynthesizer


@dataclass(frozen=True)
class Source:
    build: Callable[[Config, list[Example]], ImageSynthesizer]
    remote: bool = False  # an HTTP service: the preflight probes it
    in_process_model: bool = False  # loads a model into each training process (`negatives.device`)


def _world(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    from ovip.world.judge import WorldRenderer

    return WorldRenderer(cfg.world)


def _diffusion(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    from ovip.negatives.diffusion import DiffusersSynthesizer

    n = cfg.negatives
    check_device(n.device, "negatives.device")
    return DiffusersSynthesizer(
        model=n.model, height=n.height, width=n.width, num_inference_steps=n.steps, guidance_scale=n.guidance,
        dtype=n.dtype, device=n.device, seed=n.seed if n.fixed_seed else None,
    )  # fmt: skip


def _http(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    from ovip.negatives.http import HttpImageSynthesizer

    n = cfg.negatives
    return HttpImageSynthesizer(
        n.base_url, n.model, n.api_key_env, height=n.height, width=n.width, num_inference_steps=n.steps,
        guidance_scale=n.guidance, seed=n.seed if n.fixed_seed else None, timeout=n.timeout,
        max_retries=n.max_retries, max_concurrency=n.max_concurrency,
    )  # fmt: skip


def _crop(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    from ovip.negatives.crop import CropSynthesizer

    return CropSynthesizer()


def _random(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    from ovip.negatives.random_sample import RandomImageSynthesizer

    return RandomImageSynthesizer([e.image_path for e in examples if e.image_path])


SOURCES: dict[str, Source] = registry(
    NegativesKind,
    {
        "world": Source(_world),
        "diffusion": Source(_diffusion, in_process_model=True),
        "http": Source(_http, remote=True),
        "crop": Source(_crop),
        "random": Source(_random),
    },
    remote=RemoteNegativesKind,
)


def build_synthesizer(cfg: Config, examples: list[Example]) -> ImageSynthesizer:
    return SOURCES[cfg.negatives.kind].build(cfg, examples)
