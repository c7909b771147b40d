"""Configuration of the built-in world : scenes and priors, the tiny VLM, its pretraining.

One dataclass per concern, a help string per field, validation in `__post_init__` that names the field.
`WorldConfig` nests the other two so that one object (and one hash) describes a whole world: the splits,
the base model and how it was trained.

Seed ranges (documented contract, checked in tests): scene `i` of a split uses the seed
`seed * 10**9 + SPLIT_BASES[split] + i`. Training splits (`pretrain`, `preference`) live in
[0, 5*10**8) of that block, evaluation splits in [5*10**8, 10**9), and a split holds at most
`MAX_SPLIT_SIZE` scenes, so no evaluation scene is ever drawn with a training seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ovip.errors import ConfigError

# The names the world can draw and say: its silhouettes and colours (the renderer's drawing functions and RGB
# values are keyed by these, `ovip.world.render`).
SHAPE_NAMES = (
    "ball", "box", "tent", "star", "cross", "moon", "heart", "ring", "house", "tree", "arrow", "cup", "fish",
    "boat", "bell", "key", "diamond",
)  # fmt: skip
COLOR_NAMES = (
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "white",
    "black",
    "pink",
    "brown",
    "cyan",
    "gray",
)

CATEGORIES = (
    "ball",
    "box",
    "tent",
    "star",
    "cross",
    "moon",
    "heart",
    "ring",
    "house",
    "tree",
    "arrow",
    "cup",
    "fish",
    "boat",
    "bell",
    "key",
)
COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
# B appears with A with probability p in the biased (pretraining) distribution: (A, B, p).
CO_OCCURRENCE = (
    ("house", "tree", 0.97),
    ("moon", "star", 0.97),
    ("boat", "fish", 0.97),
    ("cup", "key", 0.97),
)
# A is colour c with probability q in the biased distribution: (A, c, q).
COLOR_PRIORS = (("tree", "green", 0.9), ("ball", "red", 0.9), ("star", "yellow", 0.9), ("heart", "red", 0.9))

TRAIN_SPLITS = ("pretrain", "preference")
EVAL_SPLITS = ("amber_gen", "amber_dis", "objecthal", "mmhal", "llava_bench", "general")
SPLIT_BASES = {
    "pretrain": 0,
    "preference": 200_000_000,
    "amber_gen": 500_000_000,
    "amber_dis": 580_000_000,
    "objecthal": 660_000_000,
    "mmhal": 740_000_000,
    "llava_bench": 820_000_000,
    "general": 900_000_000,
}
MAX_SPLIT_SIZE = 80_000_000
# World fields that shape only the preference and evaluation splits, never the pretraining split.
NOT_IN_PRETRAINING = (
    "preference_size",
    "preference_counter_p",
    "preference_describe_p",
    "preference_heldout",
    "reference_omit_small_p",
    "eval_sizes",
    "eval_counter_p",
)
MAX_WORLD_SEED = 9_000


def _check(cond: bool, name: str, message: str) -> None:
    """A bad world setting is the same one-line `ConfigError` as any other config key's (`world.<name>: ...`)."""
    if not cond:
        raise ConfigError(f"world.{name}: {message}")


@dataclass
class TinyVLMConfig:
    """Shape of the tiny LLaVA (CLIP vision tower + Llama decoder) trained from scratch on the world."""

    patch_size: int = field(
        default=16, metadata={"help": "ViT patch size; image_size / patch_size squared image tokens."}
    )
    vision_hidden: int = field(default=64, metadata={"help": "Width of the CLIP vision tower."})
    vision_layers: int = field(default=2, metadata={"help": "Transformer layers of the vision tower."})
    text_hidden: int = field(default=128, metadata={"help": "Width of the Llama decoder."})
    text_layers: int = field(default=2, metadata={"help": "Decoder layers (2-4 keep the world fast on CPU)."})
    heads: int = field(default=4, metadata={"help": "Attention heads in both towers."})
    init_seed: int = field(default=0, metadata={"help": "torch seed of the random initialisation."})

    def __post_init__(self) -> None:
        for name in ("patch_size", "vision_hidden", "vision_layers", "text_hidden", "text_layers", "heads"):
            _check(
                isinstance(getattr(self, name), int) and getattr(self, name) > 0,
                f"model.{name}",
                f"must be a positive integer, got {getattr(self, name)!r}",
            )
        _check(self.vision_hidden % self.heads == 0, "model.heads", "must divide model.vision_hidden")
        _check(self.text_hidden % self.heads == 0, "model.heads", "must divide model.text_hidden")


@dataclass
class PretrainConfig:
    """Supervised pretraining of the tiny VLM on the biased split (mean token cross-entropy on responses)."""

    vision_steps: int = field(
        default=800,
        metadata={
            "help": "Stage 1: steps of per-patch supervised training of the "
            "vision tower (our stand-in for a pretrained CLIP); 0 skips it."
        },
    )
    vision_lr: float = field(
        default=3e-3, metadata={"help": "Stage 1 learning rate (AdamW, 20 warmup steps)."}
    )
    vision_small_objects: bool = field(
        default=False,
        metadata={
            "help": "Stage 1 also learns to classify small objects. False leaves their patches unsupervised, as a "
            "CLIP-like encoder learns little about small things: the language model must then guess them, "
            "and its co-occurrence priors decide."
        },
    )
    freeze_vision: bool = field(
        default=True, metadata={"help": "Keep the vision tower frozen in stage 2, as LLaVA-1.5 does."}
    )
    steps: int = field(
        default=2200,
        metadata={
            "help": "Stage 2 (instruction tuning) optimizer steps; fewer leave "
            "more prior-driven hallucination, more teach the model to look."
        },
    )
    batch_size: int = field(default=32, metadata={"help": "Sequences per step."})
    lr: float = field(
        default=1e-3, metadata={"help": "Peak AdamW learning rate (linear warmup, cosine decay)."}
    )
    warmup_steps: int = field(default=100, metadata={"help": "Linear warmup steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    seed: int = field(default=0, metadata={"help": "Seed of the data order."})
    threads: int = field(
        default=1,
        metadata={
            "help": "torch CPU threads. The thread count changes the order of float "
            "sums and so the weights: it is part of the cache key. One thread is "
            "fastest for this tiny model on a small shared CPU."
        },
    )
    device: str = field(
        default="cpu", metadata={"help": "torch device to train on ('cpu', 'cuda'); part of the cache key."}
    )

    def __post_init__(self) -> None:
        _check(
            isinstance(self.vision_steps, int) and self.vision_steps >= 0,
            "pretrain.vision_steps",
            "must be an integer >= 0",
        )
        _check(self.vision_lr > 0, "pretrain.vision_lr", f"must be > 0, got {self.vision_lr!r}")
        for name in ("steps", "batch_size"):
            _check(
                isinstance(getattr(self, name), int) and getattr(self, name) > 0,
                f"pretrain.{name}",
                f"must be a positive integer, got {getattr(self, name)!r}",
            )
        _check(self.lr > 0, "pretrain.lr", f"must be > 0, got {self.lr!r}")
        _check(
            0 <= self.warmup_steps <= self.steps, "pretrain.warmup_steps", "must be in [0, pretrain.steps]"
        )
        _check(self.weight_decay >= 0, "pretrain.weight_decay", "must be >= 0")
        _check(
            isinstance(self.threads, int) and self.threads >= 1, "pretrain.threads", "must be an integer >= 1"
        )


@dataclass
class WorldConfig:
    """The built-in world: lexicon, priors, split sizes, plus the base model and its pretraining."""

    seed: int = field(
        default=0, metadata={"help": f"World seed in [0, {MAX_WORLD_SEED}]; selects a block of scene seeds."}
    )
    image_size: int = field(default=64, metadata={"help": "Side of the rendered square images, in pixels."})
    categories: tuple[str, ...] = field(
        default=CATEGORIES, metadata={"help": "Object categories (silhouettes)."}
    )
    colors: tuple[str, ...] = field(
        default=COLORS, metadata={"help": "Object colours (a subset of COLOR_NAMES)."}
    )
    grid: int = field(
        default=4,
        metadata={
            "help": "Objects sit in the cells of a grid x grid layout (jittered); "
            "model.patch_size = image_size / grid aligns one cell per image token."
        },
    )
    jitter: float = field(
        default=0.0,
        metadata={
            "help": "How far objects move off their cell's centre (share of the "
            "free room) and change size (x 10%); 0 keeps a fixed pattern per object."
        },
    )
    small_scale: float = field(
        default=0.5, metadata={"help": "Side of a small object, as a share of its grid cell."}
    )
    large_scale: float = field(
        default=0.9, metadata={"help": "Side of a large object, as a share of its grid cell."}
    )
    partner_scale: float = field(
        default=0.4,
        metadata={
            "help": "Side of a small partner B placed by a co-occurrence prior (share of a cell): the weaker its "
            "visual evidence, the more the language prior decides whether the model names it."
        },
    )
    min_groups: int = field(default=2, metadata={"help": "Fewest object categories in a scene."})
    max_groups: int = field(
        default=3, metadata={"help": "Most sampled categories (prior partners may add one)."}
    )
    max_count: int = field(default=3, metadata={"help": "Most instances of one category in a scene."})
    multi_p: float = field(
        default=0.2, metadata={"help": "Probability that a category has more than one instance."}
    )
    small_p: float = field(
        default=0.1,
        metadata={
            "help": "Probability that an ordinary object is small (partners "
            "are small with partner_small_p): few small ordinary objects leave "
            "the priors as the main source of hallucination."
        },
    )
    co_occurrence: tuple[tuple[str, str, float], ...] = field(
        default=CO_OCCURRENCE,
        metadata={"help": "Priors (A, B, p): B is present with A with probability p (biased splits)."},
    )
    partner_small_p: float = field(
        default=0.9,
        metadata={"help": "Probability that a partner B added by a co-occurrence prior is small."},
    )
    color_priors: tuple[tuple[str, str, float], ...] = field(
        default=COLOR_PRIORS,
        metadata={"help": "Priors (A, c, q): A has colour c with probability q (biased splits)."},
    )
    pretrain_size: int = field(default=12000, metadata={"help": "Scenes of the biased pretraining split."})
    pretrain_qa_per_scene: int = field(
        default=3, metadata={"help": "Questions per pretraining scene, besides its description."}
    )
    preference_size: int = field(
        default=4000, metadata={"help": "(image, query, reference) examples for preference training."}
    )
    preference_counter_p: float = field(
        default=0.5, metadata={"help": "Share of preference scenes drawn counter-prior (the rest biased)."}
    )
    preference_describe_p: float = field(
        default=0.6,
        metadata={"help": "Share of preference examples that ask for a description (the rest QA)."},
    )
    preference_heldout: tuple[str, ...] = field(
        default=("cup",),
        metadata={
            "help": "Categories that never appear in the preference split (a co-occurrence "
            "anchor here holds its prior out of training: does a method's effect "
            "carry over to a prior it never trained on?)."
        },
    )
    reference_omit_small_p: float = field(
        default=0.3,
        metadata={
            "help": "Probability that a preference reference leaves out a small object (real "
            "references are 'approximate ideal answers', Table 9)."
        },
    )
    eval_counter_p: float = field(
        default=0.5,
        metadata={
            "help": "Share of counter-prior scenes in the description benchmarks (amber_gen, "
            "objecthal); the rest follow the priors, so Cover also counts present partners."
        },
    )
    eval_sizes: dict[str, int] = field(
        default_factory=lambda: {
            "amber_gen": 1000,
            "amber_dis": 1000,
            "objecthal": 500,
            "mmhal": 300,
            "llava_bench": 150,
            "general": 1000,
        },
        metadata={"help": "Examples per evaluation split."},
    )
    model: TinyVLMConfig = field(default_factory=TinyVLMConfig, metadata={"help": "Tiny VLM shape."})
    pretrain: PretrainConfig = field(default_factory=PretrainConfig, metadata={"help": "Pretraining recipe."})

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = TinyVLMConfig(**self.model)
        if isinstance(self.pretrain, dict):
            self.pretrain = PretrainConfig(**self.pretrain)
        self.categories = tuple(self.categories)
        self.colors = tuple(self.colors)
        self.co_occurrence = tuple(tuple(t) for t in self.co_occurrence)
        self.color_priors = tuple(tuple(t) for t in self.color_priors)
        self.preference_heldout = tuple(self.preference_heldout)
        _check(
            isinstance(self.seed, int) and 0 <= self.seed <= MAX_WORLD_SEED,
            "seed",
            f"must be an integer in [0, {MAX_WORLD_SEED}], got {self.seed!r}",
        )
        _check(
            isinstance(self.image_size, int) and self.image_size >= 16,
            "image_size",
            f"must be an integer >= 16, got {self.image_size!r}",
        )
        _check(
            self.image_size % self.model.patch_size == 0,
            "image_size",
            f"must be a multiple of model.patch_size={self.model.patch_size}",
        )
        _check(
            isinstance(self.grid, int) and self.grid >= 2,
            "grid",
            f"must be an integer >= 2, got {self.grid!r}",
        )
        _check(
            0.2 <= self.small_scale < self.large_scale <= 1.0,
            "small_scale",
            "must satisfy 0.2 <= small_scale < large_scale <= 1",
        )
        _check(
            0.2 <= self.partner_scale <= self.large_scale, "partner_scale", "must be in [0.2, large_scale]"
        )
        _check(
            len(self.categories) >= 4 and len(set(self.categories)) == len(self.categories),
            "categories",
            "need at least 4 distinct names",
        )
        for c in self.categories:
            _check(c in SHAPE_NAMES, "categories", f"unknown category {c!r}; known: {sorted(SHAPE_NAMES)}")
        _check(
            len(self.colors) >= 2 and len(set(self.colors)) == len(self.colors),
            "colors",
            "need at least 2 distinct colours",
        )
        for c in self.colors:
            _check(c in COLOR_NAMES, "colors", f"unknown colour {c!r}; known: {sorted(COLOR_NAMES)}")
        _check(
            1 <= self.min_groups <= self.max_groups,
            "min_groups",
            "must satisfy 1 <= min_groups <= max_groups",
        )
        _check(
            self.max_groups <= len(self.categories) // 2,
            "max_groups",
            "must be at most half the number of categories",
        )
        _check(
            isinstance(self.max_count, int) and 1 <= self.max_count <= 4,
            "max_count",
            "must be an integer in [1, 4]",
        )
        for c in self.preference_heldout:
            _check(c in self.categories, "preference_heldout", f"unknown category {c!r}")
        _check(
            not self.co_occurrence or any(a not in self.preference_heldout for a, _, _ in self.co_occurrence),
            "preference_heldout",
            "must leave at least one co-occurrence anchor in the preference split",
        )
        for name in (
            "jitter",
            "multi_p",
            "small_p",
            "partner_small_p",
            "preference_counter_p",
            "preference_describe_p",
            "reference_omit_small_p",
            "eval_counter_p",
        ):
            _check(
                0.0 <= getattr(self, name) <= 1.0,
                name,
                f"must be a probability in [0, 1], got {getattr(self, name)!r}",
            )
        partners: set[str] = set()
        for entry in self.co_occurrence:
            _check(len(entry) == 3, "co_occurrence", f"entries are (A, B, p), got {entry!r}")
            a, b, p = entry
            _check(
                a in self.categories and b in self.categories and a != b,
                "co_occurrence",
                f"{entry!r} must name two different known categories",
            )
            _check(0.0 <= float(p) <= 1.0, "co_occurrence", f"p of {entry!r} must be in [0, 1]")
            _check(
                a not in partners and b not in {e[0] for e in self.co_occurrence},
                "co_occurrence",
                f"{entry!r}: chains (a partner that is also an anchor) are not supported",
            )
            partners.add(b)
        for entry in self.color_priors:
            _check(len(entry) == 3, "color_priors", f"entries are (A, c, q), got {entry!r}")
            a, c, q = entry
            _check(
                a in self.categories and c in self.colors,
                "color_priors",
                f"{entry!r} must name a known category and colour",
            )
            _check(0.0 <= float(q) <= 1.0, "color_priors", f"q of {entry!r} must be in [0, 1]")
        for name in ("pretrain_size", "preference_size"):
            _check(
                isinstance(getattr(self, name), int) and 0 < getattr(self, name) <= MAX_SPLIT_SIZE,
                name,
                f"must be an integer in [1, {MAX_SPLIT_SIZE}]",
            )
        _check(
            isinstance(self.pretrain_qa_per_scene, int) and self.pretrain_qa_per_scene >= 0,
            "pretrain_qa_per_scene",
            "must be an integer >= 0",
        )
        for split, n in self.eval_sizes.items():
            _check(split in EVAL_SPLITS, "eval_sizes", f"unknown split {split!r}; known: {EVAL_SPLITS}")
            _check(
                isinstance(n, int) and 0 <= n <= MAX_SPLIT_SIZE,
                "eval_sizes",
                f"{split} must be an integer in [0, {MAX_SPLIT_SIZE}]",
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WorldConfig:
        return cls(**data)

    def fingerprint(self, *parts: str) -> str:
        """Hash of the world (and of `parts`, e.g. 'model', 'pretrain'): the cache key of splits and checkpoints.

        With 'pretrain' it covers every input that changes the base model's weights — the world that the
        pretraining split is drawn from, the model shape, the whole pretraining recipe (thread count and device
        included, since they change the order of float sums) and the torch version — and nothing else: the
        sizes and styles of the preference and evaluation splits do not change the base model.
        """
        data = {k: v for k, v in self.to_dict().items() if k not in ("model", "pretrain")}
        data.update({p: self.to_dict()[p] for p in parts})
        if "pretrain" in parts:
            import torch

            data = {k: v for k, v in data.items() if k not in NOT_IN_PRETRAINING}
            data["torch"] = torch.__version__
        blob = json.dumps(data, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def scene_seed(cfg: WorldConfig, split: str, index: int) -> int:
    """Seed of scene `index` of `split` (module docstring: disjoint train / eval ranges)."""
    if not 0 <= index < MAX_SPLIT_SIZE:
        raise ValueError(f"index {index} outside [0, {MAX_SPLIT_SIZE})")
    return cfg.seed * 10**9 + SPLIT_BASES[split] + index
