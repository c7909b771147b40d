"""Build the loop's parts from a Config: the policy and the training data; checks before anything loads.

The judge, the describer and the negative-image source come from their registries
(`ovip.feedback.registry`, `ovip.negatives.registry`). The built-in world is resolved before this
(`ovip.world.resolve.prepare`): `model.path` and `train.data` are plain paths here.
"""

from __future__ import annotations

import logging

from ovip.config import Config, check_device
from ovip.errors import ConfigError
from ovip.negatives.registry import SOURCES
from ovip.policy.model import LoraSpec, Policy, check_model_path
from ovip.train.engines import SAMPLERS

log = logging.getLogger(__name__)


def check_setup(cfg: Config) -> None:
    """Refuse, before anything is loaded, a local model path that does not exist, a CUDA device on a machine
    without CUDA, and a full fine-tune sampled by policy servers (they load LoRA adapters): one line each,
    naming the key to change."""
    if cfg.model.path != "world":  # the world's model is built by `ovip.world.resolve.prepare`
        check_model_path(cfg.model.path)
    check_device(cfg.model.device, "model.device")
    if SOURCES[cfg.negatives.kind].in_process_model:
        check_device(cfg.negatives.device, "negatives.device")
    if SAMPLERS[cfg.rollout.engine].pushes_adapter and cfg.model.finetune != "lora":
        raise ConfigError(
            f"model.finetune: rollout.engine {cfg.rollout.engine} pushes LoRA adapters to the policy servers; "
            f"a {cfg.model.finetune} fine-tune has none (use model.finetune lora, or rollout.engine local)"
        )


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
        policy = Policy.from_pretrained(m.path, adapter=m.adapter, **load)
    else:
        policy = Policy.from_pretrained(m.path, finetune=m.finetune, lora=lora, **load)
    if m.gradient_checkpointing:  # non-reentrant: works with frozen inputs (LoRA) and under DDP
        policy.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return policy


def check_ranks(cfg: Config, world: int) -> None:
    """What several ranks cannot share: an in-process diffusion model (every rank would load its own on the
    same GPU; serve it once, `ovip serve images`, and use negatives.kind http)."""
    if world == 1:
        return
    if SOURCES[cfg.negatives.kind].in_process_model:
        raise ConfigError(
            f"negatives.kind: {cfg.negatives.kind} would load the image model in each of the {world} ranks; "
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
