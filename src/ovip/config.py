"""Configuration: one dataclass per concern, help text per field, validation in __post_init__.

Defaults are the paper's (Appendix B.2) and, where the paper is silent, the authors' released code
(Appendix B.2 and the authors' released code). YAML recipes set values only; command-line overrides use dotted keys
(`--loss.beta 0.2`). An unknown key or a bad value is a one-line `ConfigError` naming the key and, for typos,
the closest valid key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A bad config key or value; the message is one line that names the key."""


def _help(text: str, default, **kw):
    factory = kw.pop("factory", None)
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def _finite(section: str, config) -> None:
    """Every float field of `config` is a finite number: NaN and inf pass every `x > 0` test the wrong way
    (NaN fails none of `not x > 0`'s complements) and then turn every weight into NaN."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{f.name}: must be a finite number, got {value}")


def _positive(section: str, config, *names: str, zero_ok: bool = False) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and not (value >= 0 if zero_ok else value > 0):
            raise ConfigError(f"{section}.{name}: must be {'>= 0' if zero_ok else '> 0'}, got {value}")


@dataclass
class ModelConfig:
    path: str = _help(
        "Hugging Face model id or local path (image-text-to-text); 'world' = the built-in tiny VLM", "world"
    )
    adapter: str | None = _help("a trained PEFT adapter to start from (None: fresh LoRA)", None)
    dtype: str = _help("float32 | bfloat16 | float16", "float32")
    device: str = _help("cpu | cuda | cuda:N (with several ranks, `cuda` is each rank's own GPU)", "cpu")
    finetune: str = _help("lora | full (full keeps a frozen copy as reference)", "lora")
    lora_r: int = _help("LoRA rank (paper: 256)", 256)
    lora_alpha: int = _help("LoRA alpha (paper: 512)", 512)
    lora_dropout: float = _help("LoRA dropout (LLaMA-Factory default 0)", 0.0)
    lora_target: list[str] | None = _help(
        "LoRA target module names; None = all language-model linear layers", None
    )
    no_image: str = _help(
        "image-free condition: drop (remove image tokens, authors' code) | blank (white image)", "drop"
    )
    max_length: int | None = _help(
        "longest sequence in tokens (image tokens included); longer is an error", None
    )
    gradient_checkpointing: bool = _help(
        "recompute activations in the backward pass instead of keeping them "
        "(non-reentrant): less memory for a 13B policy, about a third more time",
        False,
    )
    attn_implementation: str | None = _help(
        "attention kernel passed to from_pretrained: eager | sdpa | "
        "flash_attention_2 (None: the transformers default)",
        None,
    )

    def __post_init__(self):
        _finite("model", self)
        _check(
            self.dtype in ("float32", "bfloat16", "float16"), "model.dtype", f"unknown dtype {self.dtype!r}"
        )
        _check(
            self.finetune in ("lora", "full"),
            "model.finetune",
            f"must be lora or full, got {self.finetune!r}",
        )
        _positive("model", self, "lora_r", "lora_alpha", "max_length")
        _check(0 <= self.lora_dropout < 1, "model.lora_dropout", "must be in [0, 1)")
        _check(
            self.no_image in ("drop", "blank"),
            "model.no_image",
            f"must be drop or blank, got {self.no_image!r}",
        )


@dataclass
class RolloutConfig:
    k: int = _help("responses sampled per (image, query) (paper: 16)", 16)
    temperature: float = _help("sampling temperature (authors' code: 1.2)", 1.2)
    top_p: float = _help("nucleus sampling (authors' code: 0.8)", 0.8)
    max_new_tokens: int = _help("longest sampled response (authors' code: 256)", 256)
    prompts_per_batch: int = _help("prompts sampled together in one generate call", 4)

    def __post_init__(self):
        _finite("rollout", self)
        _check(self.k >= 2, "rollout.k", f"need at least 2 samples to form pairs, got {self.k}")
        _positive("rollout", self, "temperature", "max_new_tokens", "prompts_per_batch")
        _check(0 < self.top_p <= 1, "rollout.top_p", "must be in (0, 1]")


@dataclass
class JudgeConfig:
    kind: str = _help("world (rule-based) | openai (any OpenAI-compatible chat endpoint, e.g. vLLM)", "world")
    base_url: str | None = _help(
        "chat-completions base URL, e.g. http://127.0.0.1:8000/v1; replicas "
        "comma-separated (requests spread over them, failover when one dies)",
        None,
    )
    model: str = _help("judge model name (paper: Qwen2.5-7B-Instruct)", "Qwen/Qwen2.5-7B-Instruct")
    api_key_env: str = _help("environment variable holding the API key", "OPENAI_API_KEY")
    temperature: float = _help("judge temperature (paper: 0.1)", 0.1)
    timeout: float = _help("seconds per attempt, connect + send + read together", 30.0)
    max_retries: int = _help("attempts after the first before the judgment counts as failed", 2)
    max_concurrency: int = _help(
        "requests in flight at once per replica, over all prompts of a rollout batch", 64
    )

    def __post_init__(self):
        _finite("judge", self)
        _check(self.kind in ("world", "openai"), "judge.kind", f"must be world or openai, got {self.kind!r}")
        _check(
            self.kind != "openai" or bool(self.base_url),
            "judge.base_url",
            "required when judge.kind is openai",
        )
        _positive("judge", self, "timeout", "max_concurrency")
        _positive("judge", self, "temperature", "max_retries", zero_ok=True)


@dataclass
class DescriberConfig:
    kind: str = _help("world | openai", "world")
    base_url: str | None = _help(
        "chat-completions base URL(s), comma-separated (defaults to judge.base_url)", None
    )
    model: str = _help("describer model name (paper: Qwen2.5-7B-Instruct)", "Qwen/Qwen2.5-7B-Instruct")
    api_key_env: str = _help("environment variable holding the API key", "OPENAI_API_KEY")
    temperature: float = _help("paper: 0.1", 0.1)
    top_p: float = _help("paper: 0.9", 0.9)
    max_tokens: int = _help("paper: 128", 128)
    timeout: float = _help("seconds per attempt, connect + send + read together", 30.0)
    max_retries: int = _help("attempts after the first before the description counts as failed", 2)
    max_concurrency: int = _help(
        "requests in flight at once per replica (one per pair of a rollout batch)", 16
    )

    def __post_init__(self):
        _finite("describer", self)
        _check(
            self.kind in ("world", "openai"), "describer.kind", f"must be world or openai, got {self.kind!r}"
        )
        _positive("describer", self, "max_tokens", "timeout", "max_concurrency")
        _positive("describer", self, "temperature", "max_retries", zero_ok=True)
        _check(0 < self.top_p <= 1, "describer.top_p", "must be in (0, 1]")


@dataclass
class PairsConfig:
    delta: float = _help("lower-bound score margin delta of Eq. 2 (paper: 3)", 3.0)
    tau_pos: float = _help("chosen score must exceed this (paper: 5)", 5.0)
    tau_neg: float = _help("rejected score must be below this (paper: 5)", 5.0)
    reference_fallback: bool = _help(
        "pair A* with the worst response when no pair is found (Algorithm 1)", True
    )
    rule: str = _help("paper | released_code (the authors' code thresholds)", "paper")

    def __post_init__(self):
        _finite("pairs", self)
        _check(self.delta >= 0, "pairs.delta", "must be >= 0")
        for name in ("tau_pos", "tau_neg"):  # judge scores are in [0, 10] (Table 9)
            _check(
                0 <= getattr(self, name) <= 10,
                f"pairs.{name}",
                f"must be in [0, 10], got {getattr(self, name)}",
            )
        _check(
            self.rule in ("paper", "released_code"),
            "pairs.rule",
            f"must be paper or released_code, got {self.rule!r}",
        )


@dataclass
class NegativesConfig:
    kind: str = _help(
        "world (renderer) | diffusion (in-process diffusers) | http (an OpenAI Images API server: "
        "`ovip serve images`, ...) | crop | random",
        "world",
    )
    model: str = _help(
        "diffusers text-to-image model id or path (paper: FLUX.1-dev); for http, the served model name",
        "black-forest-labs/FLUX.1-dev",
    )
    height: int = _help("paper: 384", 384)
    width: int = _help("paper: 384", 384)
    steps: int = _help("num_inference_steps (paper: 40)", 40)
    guidance: float = _help("guidance_scale (paper: 7.5)", 7.5)
    dtype: str = _help("diffusion dtype", "bfloat16")
    device: str = _help("diffusion device", "cuda")
    seed: int = _help(
        "base seed; each negative image draws with its own seed derived from it, the example and "
        "the rejected answer (recorded in experiences.jsonl as negative_seed)",
        0,
    )
    fixed_seed: bool = _help(
        "draw every diffusion image with `seed` itself (the authors' code: seed 0 for all)", False
    )
    base_url: str | None = _help(
        "kind http: Images API base URL, e.g. http://127.0.0.1:8001/v1; replicas comma-separated", None
    )
    api_key_env: str = _help("kind http: environment variable holding the API key", "OPENAI_API_KEY")
    timeout: float = _help("kind http: seconds per attempt, connect + send + read together", 120.0)
    max_retries: int = _help("kind http: attempts after the first before the image counts as failed", 2)
    max_concurrency: int = _help(
        "kind http: requests in flight at once per replica (a server batches them)", 4
    )

    def __post_init__(self):
        _finite("negatives", self)
        _check(
            self.kind in ("world", "diffusion", "http", "crop", "random"),
            "negatives.kind",
            f"unknown kind {self.kind!r}",
        )
        _check(
            self.kind != "http" or bool(self.base_url),
            "negatives.base_url",
            "required when negatives.kind is http",
        )
        _positive("negatives", self, "height", "width", "steps", "timeout", "max_concurrency")
        _positive("negatives", self, "guidance", "max_retries", zero_ok=True)


@dataclass
class LossConfig:
    beta: float = _help("beta of L_Text, Eq. 4 (paper: 0.1)", 0.1)
    beta1: float = _help("beta1 of L_Image, Eq. 5 (paper: 0.1)", 0.1)
    beta2: float = _help("beta2 of L_Image, Eq. 5 (paper: 0.1)", 0.1)
    text_weight: float = _help("weight of L_Text in Eq. 6", 1.0)
    image_weight: float = _help("weight of L_Image in Eq. 6", 1.0)
    image: str = _help(
        "image loss: ovip (Eq. 5) | split (authors' code) | base | sym (Appendix B.1) | none", "ovip"
    )
    anchor_weight: float = _help("weight of the anchor loss (B.1; paper finds it hurts: 0)", 0.0)
    bi_anchor_weight: float = _help("weight of the bi-directional anchor loss (B.1)", 0.0)
    sft_weight: float = _help("weight of a per-token NLL on A+", 0.0)
    grpo_beta: float = _help(
        "GRPO: weight of the per-token KL to the reference (TRL's GRPOTrainer default was "
        "0.04; the paper does not give its GRPO settings)",
        0.04,
    )
    grpo_epsilon: float = _help("GRPO: clip range of the probability ratio", 0.2)

    def __post_init__(self):
        _finite("loss", self)
        _positive("loss", self, "beta", "beta1", "beta2", "grpo_epsilon")
        _positive(
            "loss",
            self,
            "text_weight",
            "image_weight",
            "anchor_weight",
            "bi_anchor_weight",
            "sft_weight",
            "grpo_beta",
            zero_ok=True,
        )
        _check(
            self.image in ("ovip", "split", "base", "sym", "none"),
            "loss.image",
            f"unknown image loss {self.image!r}",
        )


PIPELINES = ("sequential", "concurrent", "overlapped")
METHODS = ("ovip", "ovip-offline", "dpo-online", "dpo", "dpo-iterative", "mdpo", "sft", "grpo")


@dataclass
class TrainConfig:
    method: str = _help(
        "ovip (Algorithm 1) | dpo-online (online pairs, L_Text only) | dpo (pairs sampled once from "
        "the initial model, then trained) | dpo-iterative (re-sampled every 1/rounds of the data) | "
        "ovip-offline | mdpo (offline pairs, crop negatives, L_Image^base + anchor) | sft (the "
        "reference answers) | grpo (group-relative advantages from the judge's scores); see "
        "ovip.train.methods",
        "ovip",
    )
    rounds: int = _help(
        "dpo-iterative: sampling rounds over the data (each sampled from the current policy)", 4
    )
    data: str = _help(
        "training data file (JSONL, sharegpt JSON, RLAIF-V parquet, TRL JSON) or 'world'", "world"
    )
    output_dir: str = _help("run folder: metrics, checkpoints, experiences", "runs/ovip")
    lr: float = _help("learning rate (paper: 1e-6 for 7B, 5e-7 for 13B)", 1e-6)
    batch_size: int = _help("global batch N: experiences per optimizer step (paper: 16)", 16)
    micro_batch_size: int = _help("experiences per forward (gradient accumulation up to batch_size)", 4)
    epochs: int = _help("passes over the data (paper: 1)", 1)
    warmup_ratio: float = _help("share of steps with linear warmup before the cosine decay", 0.0)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    max_grad_norm: float = _help("gradient clipping", 1.0)
    max_examples: int | None = _help("use only the first N examples", None)
    seed: int = _help("seed for sampling, data order and LoRA init", 0)
    save_every: int = _help("save a checkpoint every N optimizer steps (0: only at the end)", 10)
    keep_checkpoints: int = _help(
        "newest checkpoints kept on disk (0: all, e.g. to evaluate along training)", 2
    )
    skip_invalid: bool = _help("skip (and count) invalid records instead of refusing the data", False)
    max_image_pixels: int = _help(
        "largest image (width x height) read; larger ones are invalid records", 50_000_000
    )
    max_nonfinite_steps: int = _help("stop (with a checkpoint) after this many non-finite steps in a row", 5)
    report_to: list[str] = _help(
        "also send each step's metrics to: tensorboard (RUN_DIR/tensorboard), wandb "
        "(WANDB_MODE=offline works without a network); comma-separated",
        None,
        factory=list,
    )
    pipeline: str = _help(
        "sequential (prompt after prompt, pair after pair) | concurrent (all requests of a rollout "
        "batch in flight, bounded per service; same results as sequential) | overlapped "
        "(concurrent, and the next batch is sampled while this one is judged, described and "
        "drawn: batches sampled up to one batch's updates stale)",
        "concurrent",
    )
    max_failure_rate: float = _help(
        "stop (with a checkpoint) when more than this share of a service's last "
        "`failure_window` calls failed",
        0.5,
    )
    failure_window: int = _help("calls per service over which max_failure_rate is measured", 50)
    collective_timeout: float = _help(
        "with several ranks: seconds a rank waits in a collective (the update "
        "agreement, a checkpoint barrier) for the others before the job fails",
        1800.0,
    )
    preflight_timeout: float = _help(
        "seconds the preflight waits for each remote service replica's one reply before the run stops "
        "(or the service's own timeout when shorter); there is no retry",
        20.0,
    )

    def __post_init__(self):
        _finite("train", self)
        _positive(
            "train",
            self,
            "lr",
            "batch_size",
            "micro_batch_size",
            "epochs",
            "max_grad_norm",
            "max_examples",
            "max_image_pixels",
            "max_nonfinite_steps",
        )
        _positive("train", self, "weight_decay", "save_every", "seed", "keep_checkpoints", zero_ok=True)
        _check(0 <= self.warmup_ratio < 1, "train.warmup_ratio", "must be in [0, 1)")
        _check(
            isinstance(self.report_to, list),
            "train.report_to",
            f"expected a list of trackers, got {self.report_to!r}",
        )
        self.report_to = [t for t in self.report_to if t != "none"]  # TRL's spelling of "no tracker"
        for tracker in self.report_to:
            _check(
                tracker in ("tensorboard", "wandb"),
                "train.report_to",
                f"unknown tracker {tracker!r}; choose from tensorboard, wandb (or none)",
            )
        _check(
            self.pipeline in PIPELINES,
            "train.pipeline",
            f"must be one of {', '.join(PIPELINES)}, got {self.pipeline!r}",
        )
        _check(
            0 < self.max_failure_rate <= 1,
            "train.max_failure_rate",
            f"must be in (0, 1], got {self.max_failure_rate}",
        )
        _positive("train", self, "failure_window", "rounds", "collective_timeout", "preflight_timeout")
        _check(
            self.method in METHODS,
            "train.method",
            f"must be one of {', '.join(METHODS)}, got {self.method!r}",
        )


@dataclass
class EvalConfig:
    temperature: float = _help("evaluation decoding (authors' eval: sampling, 0.1)", 0.1)
    top_p: float = _help("authors' eval: 0.8", 0.8)
    greedy: bool = _help("greedy decoding instead of sampling", False)
    max_new_tokens: int = _help("authors' eval: 384", 384)
    batch_size: int = _help("prompts per generate call", 16)
    seed: int = _help("sampling seed", 0)

    def __post_init__(self):
        _finite("eval", self)
        _positive("eval", self, "temperature", "max_new_tokens", "batch_size")
        _check(0 < self.top_p <= 1, "eval.top_p", "must be in (0, 1]")


@dataclass
class Config:
    model: ModelConfig = _help("policy model", None, factory=ModelConfig)
    rollout: RolloutConfig = _help("sampling", None, factory=RolloutConfig)
    judge: JudgeConfig = _help("G_r", None, factory=JudgeConfig)
    describer: DescriberConfig = _help("G_diff", None, factory=DescriberConfig)
    pairs: PairsConfig = _help("pair selection", None, factory=PairsConfig)
    negatives: NegativesConfig = _help("negative images", None, factory=NegativesConfig)
    loss: LossConfig = _help("losses", None, factory=LossConfig)
    train: TrainConfig = _help("optimisation", None, factory=TrainConfig)
    eval: EvalConfig = _help("evaluation", None, factory=EvalConfig)
    world: dict = _help("built-in world settings (see ovip.world.config.WorldConfig)", None, factory=dict)


def _suggest(key: str, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(key: str, value, annotation):
    """Turn YAML / command-line values into the field's type; a mismatch is a ConfigError naming the key."""
    hint = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    if (value is None or isinstance(value, str) and value.lower() in ("none", "null")) and "None" in hint:
        return None
    try:
        if isinstance(value, bool) and not hint.startswith("bool"):
            raise ValueError  # YAML's `yes` is not a number of steps
        if hint.startswith("str") and not isinstance(value, str):
            raise ValueError
        if hint.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if hint.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint.startswith("float"):
            return float(value)
        if hint.startswith("list") and isinstance(value, str):
            return [v for v in value.split(",") if v]
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {hint}, got {value!r}") from None
    return value


# Keys renamed since a run folder's config.yaml may have been written: old name -> new name.
RENAMED = {("judge", "concurrency"): "max_concurrency"}


def from_dict(data: dict) -> Config:
    """Build a Config from a nested dict; unknown keys and bad values raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping, got {type(data).__name__}")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built = {}
    for name, value in data.items():
        if name not in sections:
            raise ConfigError(f"unknown config section {name!r}{_suggest(name, sections)}")
        if name == "world":
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"world: expected a mapping of keys, got {value!r}")
            built[name] = dict(value or {})
            check_world(built[name])
            continue
        cls = typing.get_type_hints(Config)[name]
        hints = typing.get_type_hints(cls)
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping of keys, got {value!r}")
        kwargs = {}
        for key, v in value.items():
            key = RENAMED.get((name, key), key)
            if (name, key) == ("train", "tensorboard"):
                continue  # read below, once report_to is known
            if key not in hints:
                raise ConfigError(f"unknown key {name}.{key}{_suggest(key, hints)}")
            kwargs[key] = _coerce(f"{name}.{key}", v, hints[key])
        if name == "train" and "tensorboard" in value:
            _migrate_tensorboard(value["tensorboard"], kwargs)
        built[name] = cls(**kwargs)
    return Config(**built)


def check_world(world: dict) -> None:
    """Validate the `world` section against the typed `ovip.world.config.WorldConfig` (and its nested `model` /
    `pretrain` dataclasses): an unknown key is a one-line error with the closest key, a bad value the world's
    own one-line error. `Config.world` itself stays the mapping the recipe wrote (only the keys it sets), so a
    run's config.yaml records what was chosen; the full world, defaults included, is `WorldConfig(**world)`
    and its fingerprints are the cache keys."""
    from ovip.world.config import PretrainConfig, TinyVLMConfig, WorldConfig

    def known(cls, mapping: dict, prefix: str) -> None:
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in mapping.items():
            if key not in names:
                raise ConfigError(f"unknown key {prefix}.{key}{_suggest(key, names)}")
            nested = (
                {"model": TinyVLMConfig, "pretrain": PretrainConfig}.get(key) if cls is WorldConfig else None
            )
            if nested is not None:
                if not isinstance(value, dict):
                    raise ConfigError(f"{prefix}.{key}: expected a mapping of keys, got {value!r}")
                known(nested, value, f"{prefix}.{key}")

    known(WorldConfig, world, "world")
    try:
        WorldConfig(**world)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"world: {e}") from None


def _migrate_tensorboard(value, kwargs: dict) -> None:
    """`train.tensorboard` (a bool) became `train.report_to` (a list, as TRL's). Older run folders hold it in
    config.yaml, so it still reads: true adds `tensorboard` to report_to, false is the default and adds nothing."""
    if _coerce("train.tensorboard", value, bool):
        current = list(kwargs.get("report_to", []))
        kwargs["report_to"] = current + ["tensorboard"] * ("tensorboard" not in current)
        logging.getLogger(__name__).warning(
            "train.tensorboard is deprecated: use train.report_to tensorboard"
        )


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `--section.key value` pairs (already split) to a nested dict."""
    out = copy.deepcopy(data)
    it = iter(overrides)
    for token in it:
        if not token.startswith("--") or "." not in token:
            raise ConfigError(f"override {token!r} must look like --section.key VALUE")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        else:
            value = next(it, None)
            if value is None:
                raise ConfigError(f"override --{key} has no value")
        section, _, leaf = key.partition(".")
        if section == "world":  # free-form nested mapping: --world.pretrain.steps 100
            if out.get("world") is None:  # a bare `world:` is an empty world section (as in from_dict)
                out["world"] = {}
            node, where = out["world"], "world"
            *parents, last = leaf.split(".")
            for part in parents:
                _mapping(node, where, key)
                node, where = node.setdefault(part, {}), f"{where}.{part}"
            _mapping(node, where, key)
            try:
                node[last] = yaml.safe_load(value)
            except yaml.YAMLError as e:
                what = " ".join(str(getattr(e, "problem", None) or e).split())
                raise ConfigError(f"--{key}: {value!r} is not a YAML value ({what})") from None
            continue
        _mapping(out.setdefault(section, {}), section, key)
        out[section][leaf] = value
    return out


def _mapping(node, where: str, key: str) -> None:
    """A section (or world's nested key) that an override sets a key in must be a mapping."""
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {node!r}; cannot set --{key}")


RECIPES = Path(__file__).parent / "configs"


def recipe_path(name: str | Path) -> Path:
    """A recipe file: a path, or the name of a built-in recipe (`world`, `llava-1.5-7b`, ...)."""
    path = Path(name)
    if path.is_dir():
        raise ConfigError(f"--config {str(name)!r} is a folder; give a YAML recipe file")
    if path.exists():
        return path
    builtin = RECIPES / f"{name}.yaml"
    if builtin.exists():
        return builtin
    known = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    raise ConfigError(
        f"no recipe file {str(name)!r} and no built-in recipe of that name{_suggest(str(name), known)}"
    )


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML recipe (a path or a built-in name; none: the defaults) and apply dotted overrides."""
    data = {}
    if path is not None:
        data = read_yaml(recipe_path(path))
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return from_dict(apply_overrides(data, overrides or []))


def read_yaml(path: Path):
    """A YAML file's content ({} when empty); a syntax error is one line with the file and line number."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError(f"{where}: YAML syntax error: {what}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None


def check_device(device: str, key: str) -> None:
    """A CUDA device asked for on a machine without CUDA is a one-line ConfigError naming `key`.

    Checked where the device is used (building the policy, the diffusion pipeline, evaluation), not in
    `__post_init__`, so that a GPU recipe can still be read, printed and tested on a CPU machine.
    """
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"{key}: {device!r} but CUDA is not available on this machine; "
            f"set --{key} cpu (or edit {key} in the recipe)"
        )
