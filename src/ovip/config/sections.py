"""The config's sections: one dataclass per concern, a help string per field, validation in `__post_init__`.

Defaults are the paper's (Appendix B.2) and, where the paper is silent, the authors' released code. Every
choice among kinds is a `Literal` of the names its registry holds (`registry`): the methods
(`ovip.train.methods`), the judges and describers (`ovip.feedback.registry`), the negative-image sources
(`ovip.negatives.registry`), the image losses (`ovip.train.objective`), and each registry checks at import
that it holds exactly these names.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Literal

from ovip.config.world import WorldConfig
from ovip.errors import ConfigError

Dtype = Literal["float32", "bfloat16", "float16"]
Finetune = Literal["lora", "full"]
NoImage = Literal["drop", "blank"]
JudgeKind = Literal["world", "openai"]
DescriberKind = Literal["world", "openai"]
NegativesKind = Literal["world", "diffusion", "http", "crop", "random"]
# The kinds that are HTTP services, which need a base_url (their registries check that they say the same).
RemoteJudgeKind = Literal["openai"]
RemoteNegativesKind = Literal["http"]
ImageLoss = Literal["ovip", "split", "base", "sym", "none"]
PairRuleName = Literal["paper", "released_code"]
MethodName = Literal[
    "ovip", "ovip-offline", "dpo-online", "dpo", "dpo-iterative", "mdpo", "sft", "grpo", "kto"
]
Pipeline = Literal["sequential", "concurrent", "overlapped"]
RolloutEngine = Literal["local", "server"]
Tracker = Literal["tensorboard", "wandb"]
GRPOLossType = Literal["dapo", "grpo", "dr_grpo"]


def registry(kinds, entries: dict, remote=None) -> dict:
    """`entries` as the registry of the config choice `kinds` (a Literal): a registry that lacks a choice, or
    holds one the config does not offer, fails at import, naming both; so does one whose entries marked
    `remote` are not the config's `remote` Literal (the kinds whose base_url the config requires)."""
    if set(entries) != set(typing.get_args(kinds)):
        raise ImportError(
            f"registry {sorted(entries)} does not match the config's choices {typing.get_args(kinds)}"
        )
    marked = {name for name, entry in entries.items() if getattr(entry, "remote", False)}
    if remote is not None and marked != set(typing.get_args(remote)):
        raise ImportError(
            f"registry's remote kinds {sorted(marked)} are not the config's {typing.get_args(remote)}"
        )
    return entries


# rollout.max_logprob_gap when unset, by model.dtype: far above the log-prob noise of two engines' kernels in that
# dtype, far below what a policy that has trained a while differs from its base model (docs/services.md).
LOGPROB_GAP = registry(Dtype, {"float32": 1e-3, "bfloat16": 0.1, "float16": 0.1})


def choices(kinds) -> str:
    """'a or b' / 'one of a, b, c': the choices of a Literal, for messages and help."""
    names = [str(a) for a in typing.get_args(kinds)]
    return " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)


def _help(text: str, default, **kw):
    factory = kw.pop("factory", None)
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def _validate(section: str, config) -> None:
    """What every section checks: float fields are finite numbers (NaN and inf pass every `x > 0` test the wrong
    way and then turn every weight into NaN), and a Literal field holds one of its choices."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{f.name}: must be a finite number, got {value}")
        if typing.get_origin(hints[f.name]) is Literal and value not in typing.get_args(hints[f.name]):
            raise ConfigError(f"{section}.{f.name}: must be {choices(hints[f.name])}, got {value!r}")


def _positive(section: str, config, *names: str, zero_ok: bool = False) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and not (value >= 0 if zero_ok else value > 0):
            raise ConfigError(f"{section}.{name}: must be {'>= 0' if zero_ok else '> 0'}, got {value}")


@dataclass
class EndpointConfig:
    """Where and how a remote service is called: the fields every service section shares (the judge, the
    describer, the Images API server of the negatives, the evaluation judge)."""

    base_url: str | None = _help(
        "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; replicas comma-separated (requests spread "
        "over them, failover when one dies)",
        None,
    )
    api_key_env: str = _help("environment variable holding the API key", "OPENAI_API_KEY")
    timeout: float = _help("seconds per attempt, connect + send + read together", 30.0)
    max_retries: int = _help("attempts after the first before the call counts as failed", 2)
    max_concurrency: int = _help("requests in flight at once per replica", 16)

    def _check_endpoint(self, section: str) -> None:
        _positive(section, self, "timeout", "max_concurrency")
        _positive(section, self, "max_retries", zero_ok=True)


@dataclass
class ModelConfig:
    path: str = _help(
        "Hugging Face model id or local path (image-text-to-text); 'world' = the built-in tiny VLM", "world"
    )
    adapter: str | None = _help("a trained PEFT adapter to start from (None: fresh LoRA)", None)
    dtype: Dtype = _help("float32 | bfloat16 | float16", "float32")
    device: str = _help("cpu | cuda | cuda:N (with several ranks, `cuda` is each rank's own GPU)", "cpu")
    finetune: Finetune = _help("lora | full (full keeps a frozen copy as reference)", "lora")
    lora_r: int = _help("LoRA rank (paper: 256)", 256)
    lora_alpha: int = _help("LoRA alpha (paper: 512)", 512)
    lora_dropout: float = _help("LoRA dropout (LLaMA-Factory default 0)", 0.0)
    lora_target: list[str] | None = _help(
        "LoRA target module names; None = all language-model linear layers", None
    )
    no_image: NoImage = _help(
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
        _validate("model", self)
        _positive("model", self, "lora_r", "lora_alpha", "max_length")
        _check(0 <= self.lora_dropout < 1, "model.lora_dropout", "must be in [0, 1)")


@dataclass
class RolloutConfig(EndpointConfig):
    """Sampling (Eq. 1), in the training process (`engine: local`) or on policy servers beside it (`engine:
    server`: `ovip serve policy`, `vllm serve`; `ovip.train.rollout_server`), whose endpoint the fields of
    `EndpointConfig` describe."""

    k: int = _help("responses sampled per (image, query) (paper: 16)", 16)
    temperature: float = _help("sampling temperature (authors' code: 1.2)", 1.2)
    top_p: float = _help("nucleus sampling (authors' code: 0.8)", 0.8)
    max_new_tokens: int = _help("longest sampled response (authors' code: 256)", 256)
    prompts_per_batch: int = _help("prompts sampled together in one generate call", 4)
    engine: RolloutEngine = _help(
        "local (the policy samples in the training process) | server (policy servers sample: `ovip serve "
        "policy`, vLLM; the trainer pushes its LoRA adapter to them, see docs/services.md)",
        "local",
    )
    base_url: str | None = _help(
        "server: the policy servers' base URL, e.g. http://127.0.0.1:8010/v1; replicas comma-separated (a "
        "batch's prompts spread over them, failover when one dies)",
        None,
    )
    api_key_env: str = _help("server: environment variable holding the servers' bearer token", "OVIP_API_KEY")
    timeout: float = _help(
        "server: seconds per attempt of one prompt's k samples, connect + send + read (a request may wait "
        "behind the batch the server is sampling)",
        300.0,
    )
    max_concurrency: int = _help("server: prompts in flight at once per replica (a server batches them)", 64)
    model: str | None = _help(
        "server: the base model's name on the servers (GET /v1/models; the preflight checks it); None: "
        "model.path",
        None,
    )
    sync_every: int = _help(
        "server: push the adapter to the servers every N optimizer steps (as RUN_DIR/rollout/step-N, "
        "loaded as ovip-step-N); batches sample with the newest one pushed",
        1,
    )
    logprob_check: int = _help(
        "server: samples of the first batch after each push whose per-token log-probs the trainer "
        "recomputes with the pushed weights (rollout/logprob_gap; 0: no check)",
        4,
    )
    max_logprob_gap: float | None = _help(
        "server: the largest rollout/logprob_gap (mean |server - trainer| log-prob per token) before the "
        "run stops: a server that samples the base model, an old adapter, another chat template or dtype. "
        "None: by model.dtype, 1e-3 for float32 (2500x the float noise measured on the world), 0.1 for "
        "bfloat16 and float16 (engines' kernels differ by ~1e-2 there; not measured here)",
        None,
    )

    def __post_init__(self):
        _validate("rollout", self)
        _check(self.k >= 2, "rollout.k", f"need at least 2 samples to form pairs, got {self.k}")
        _positive("rollout", self, "temperature", "max_new_tokens", "prompts_per_batch", "sync_every")
        _positive("rollout", self, "logprob_check", "max_logprob_gap", zero_ok=True)
        _check(0 < self.top_p <= 1, "rollout.top_p", "must be in (0, 1]")
        _check(
            self.engine != "server" or bool(self.base_url),
            "rollout.base_url",
            "required when rollout.engine is server",
        )
        self._check_endpoint("rollout")


@dataclass
class JudgeConfig(EndpointConfig):
    kind: JudgeKind = _help(
        "world (rule-based) | openai (any OpenAI-compatible chat endpoint, e.g. vLLM)", "world"
    )
    model: str = _help("judge model name (paper: Qwen2.5-7B-Instruct)", "Qwen/Qwen2.5-7B-Instruct")
    temperature: float = _help("judge temperature (paper: 0.1)", 0.1)
    max_concurrency: int = _help(
        "requests in flight at once per replica, over all prompts of a rollout batch", 64
    )

    def __post_init__(self):
        _validate("judge", self)
        _check(
            self.kind not in typing.get_args(RemoteJudgeKind) or bool(self.base_url),
            "judge.base_url",
            f"required when judge.kind is {self.kind}",
        )
        self._check_endpoint("judge")
        _positive("judge", self, "temperature", zero_ok=True)


@dataclass
class DescriberConfig(EndpointConfig):
    base_url: str | None = _help(
        "chat-completions base URL(s), comma-separated (defaults to judge.base_url)", None
    )
    kind: DescriberKind = _help("world | openai", "world")
    model: str = _help("describer model name (paper: Qwen2.5-7B-Instruct)", "Qwen/Qwen2.5-7B-Instruct")
    temperature: float = _help("paper: 0.1", 0.1)
    top_p: float = _help("paper: 0.9", 0.9)
    max_tokens: int = _help("paper: 128", 128)

    def __post_init__(self):
        _validate("describer", self)
        self._check_endpoint("describer")
        _positive("describer", self, "max_tokens")
        _positive("describer", self, "temperature", zero_ok=True)
        _check(0 < self.top_p <= 1, "describer.top_p", "must be in (0, 1]")


@dataclass
class PairsConfig:
    delta: float = _help("lower-bound score margin delta of Eq. 2 (paper: 3)", 3.0)
    tau_pos: float = _help("chosen score must exceed this (paper: 5)", 5.0)
    tau_neg: float = _help("rejected score must be below this (paper: 5)", 5.0)
    reference_fallback: bool = _help(
        "pair A* with the worst response when no pair is found (Algorithm 1)", True
    )
    rule: PairRuleName = _help("paper | released_code (the authors' code thresholds)", "paper")

    def __post_init__(self):
        _validate("pairs", self)
        _check(self.delta >= 0, "pairs.delta", "must be >= 0")
        for name in ("tau_pos", "tau_neg"):  # judge scores are in [0, 10] (Table 9)
            _check(
                0 <= getattr(self, name) <= 10,
                f"pairs.{name}",
                f"must be in [0, 10], got {getattr(self, name)}",
            )


@dataclass
class NegativesConfig(EndpointConfig):
    kind: NegativesKind = _help(
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
    timeout: float = _help("kind http: seconds per attempt, connect + send + read together", 120.0)
    max_concurrency: int = _help(
        "kind http: requests in flight at once per replica (a server batches them)", 4
    )

    def __post_init__(self):
        _validate("negatives", self)
        _check(
            self.kind not in typing.get_args(RemoteNegativesKind) or bool(self.base_url),
            "negatives.base_url",
            f"required when negatives.kind is {self.kind}",
        )
        self._check_endpoint("negatives")
        _positive("negatives", self, "height", "width", "steps")
        _positive("negatives", self, "guidance", zero_ok=True)


@dataclass
class LossConfig:
    beta: float = _help("beta of L_Text, Eq. 4 (paper: 0.1)", 0.1)
    beta1: float = _help("beta1 of L_Image, Eq. 5 (paper: 0.1)", 0.1)
    beta2: float = _help("beta2 of L_Image, Eq. 5 (paper: 0.1)", 0.1)
    text_weight: float = _help("weight of L_Text in Eq. 6", 1.0)
    image_weight: float = _help("weight of L_Image in Eq. 6", 1.0)
    image: ImageLoss = _help(
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
    grpo_loss_type: GRPOLossType = _help(
        "GRPO: how token losses add up over an optimizer step, as TRL's loss_type: dapo (over all the "
        "step's tokens; TRL's default) | grpo (each sequence's token mean, averaged) | dr_grpo (over "
        "step size x rollout.max_new_tokens)",
        "dapo",
    )

    def __post_init__(self):
        _validate("loss", self)
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


@dataclass
class TrainConfig:
    method: MethodName = _help(
        "ovip (Algorithm 1) | dpo-online (online pairs, L_Text only) | dpo (pairs sampled once from "
        "the initial model, then trained) | dpo-iterative (re-sampled every 1/rounds of the data) | "
        "ovip-offline | mdpo (offline pairs, crop negatives, L_Image^base + anchor) | sft (the "
        "reference answers) | grpo (group-relative advantages from the judge's scores) | kto (judged "
        "samples as desirable / undesirable, Ethayarajh et al. 2024); see "
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
    pipeline: Pipeline = _help(
        "sequential (prompt after prompt, pair after pair) | concurrent (all requests of a rollout "
        "batch in flight, bounded per service; same results as sequential) | overlapped "
        "(concurrent, and the next batch is sampled while this one is judged, described and "
        "drawn: batches sampled up to one batch's updates stale)",
        "concurrent",
    )
    max_staleness: int | None = _help(
        "overlapped: the most optimizer steps a rollout batch may lag the policy when it enters the buffer "
        "(rollout/staleness); max_staleness + 1 batches are sampled ahead, and an update that would leave an "
        "older batch behind waits for it. None: one batch ahead, however many updates that batch brings",
        None,
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
        _validate("train", self)
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
                tracker in typing.get_args(Tracker),
                "train.report_to",
                f"unknown tracker {tracker!r}; choose from tensorboard, wandb (or none)",
            )
        _check(
            0 < self.max_failure_rate <= 1,
            "train.max_failure_rate",
            f"must be in (0, 1], got {self.max_failure_rate}",
        )
        _positive("train", self, "failure_window", "rounds", "collective_timeout", "preflight_timeout")
        _positive("train", self, "max_staleness")
        _check(
            self.max_staleness is None or self.pipeline == "overlapped",
            "train.max_staleness",
            f"bounds the overlapped pipeline; train.pipeline is {self.pipeline}",
        )


@dataclass
class EvalJudgeConfig(EndpointConfig):
    """The evaluation judge of the judged benchmarks (Object HalBench extraction, MMHal, LLaVA-Bench): the
    paper's is gpt-4o-2024-05-13 (§3.1, Appendix C); each benchmark sets its own temperature (0, or 0.2 for
    the LLaVA-Bench review)."""

    base_url: str | None = _help(
        "OpenAI-compatible base URL of the evaluation judge (required by objecthal, mmhal, llava-bench)", None
    )
    model: str = _help("evaluation judge model (paper: gpt-4o-2024-05-13)", "gpt-4o-2024-05-13")
    max_tokens: int = _help("longest judge reply", 512)
    timeout: float = _help("seconds per attempt, connect + send + read (a 512-token review)", 60.0)
    retry_wait: float = _help("seconds before the first retry, doubled after each", 1.0)
    max_wait: float = _help("the longest wait before a retry, the server's Retry-After included", 10.0)

    def __post_init__(self):
        _validate("eval.judge", self)
        self._check_endpoint("eval.judge")
        _positive("eval.judge", self, "max_tokens", "retry_wait", "max_wait")


@dataclass
class EvalConfig:
    temperature: float = _help("evaluation decoding (authors' eval: sampling, 0.1)", 0.1)
    top_p: float = _help("authors' eval: 0.8", 0.8)
    greedy: bool = _help("greedy decoding instead of sampling", False)
    max_new_tokens: int = _help("authors' eval: 384", 384)
    batch_size: int = _help("prompts per generate call", 16)
    seed: int = _help("sampling seed", 0)
    judge: EvalJudgeConfig = _help("the judge of the judged benchmarks", None, factory=EvalJudgeConfig)

    def __post_init__(self):
        _validate("eval", self)
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
    world: WorldConfig = _help("the built-in world (ovip.config.world)", None, factory=WorldConfig)
