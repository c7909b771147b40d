"""WorldConfig validation names the bad field; seed ranges of training and evaluation splits never meet."""

import pytest

from ovip.config import ConfigError
from ovip.config.world import (
    EVAL_SPLITS,
    MAX_SPLIT_SIZE,
    SPLIT_BASES,
    TRAIN_SPLITS,
    PretrainConfig,
    TinyVLMConfig,
    WorldConfig,
    scene_seed,
)


def test_defaults_are_valid_and_fingerprint_is_stable():
    a, b = WorldConfig(), WorldConfig()
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != WorldConfig(seed=1).fingerprint()
    # everything that changes the base model's weights is in its cache key: the recipe, the thread count
    # (another order of float sums) and the device
    key = a.fingerprint("model", "pretrain")
    for pretrain in ({"threads": 2}, {"lr": 1e-4}, {"device": "cuda"}, {"steps": 2000}):
        assert key != WorldConfig(pretrain=pretrain).fingerprint("model", "pretrain"), pretrain
    # ... and the splits are the same whatever the base model
    assert a.fingerprint() == WorldConfig(pretrain={"threads": 2}).fingerprint()
    # ... while the sizes of the other splits change the splits but not the base model
    other = WorldConfig(preference_size=10, eval_sizes={"amber_gen": 5})
    assert other.fingerprint() != a.fingerprint() and other.fingerprint("model", "pretrain") == key
    assert WorldConfig(small_p=0.5).fingerprint("model", "pretrain") != key


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"image_size": 8}, "image_size"),
        ({"image_size": 72}, "image_size"),  # not a multiple of the patch size
        ({"categories": ("ball", "ball", "box", "tent")}, "categories"),
        ({"categories": ("ball", "box", "tent", "zebra")}, "categories"),
        ({"colors": ("red", "mauve")}, "colors"),
        ({"min_groups": 3, "max_groups": 2}, "min_groups"),
        ({"small_p": 1.5}, "small_p"),
        ({"co_occurrence": (("house", "zebra", 0.9),)}, "co_occurrence"),
        ({"co_occurrence": (("house", "tree", 1.9),)}, "co_occurrence"),
        ({"color_priors": (("tree", "mauve", 0.9),)}, "color_priors"),
        ({"pretrain_size": 0}, "pretrain_size"),
        ({"eval_sizes": {"amber_gen": -1}}, "eval_sizes"),
        ({"eval_sizes": {"nope": 3}}, "eval_sizes"),
        ({"grid": 1}, "grid"),
        ({"preference_heldout": ("zebra",)}, "preference_heldout"),
        ({"preference_heldout": ("house", "moon", "boat", "cup")}, "preference_heldout"),
        ({"reference_omit_small_p": 2.0}, "reference_omit_small_p"),
    ],
)
def test_malformed_world_config_names_the_field(kwargs, field):
    """The same one-line ConfigError as every other config key, with the key's full dotted name."""
    with pytest.raises(ConfigError, match=rf"^world\.{field}:"):
        WorldConfig(**kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (TinyVLMConfig, {"text_layers": 0}, "model.text_layers"),
        (TinyVLMConfig, {"heads": 3}, "model.heads"),
        (PretrainConfig, {"lr": 0.0}, "pretrain.lr"),
        (PretrainConfig, {"steps": 10, "warmup_steps": 20}, "pretrain.warmup_steps"),
    ],
)
def test_malformed_nested_config_names_the_field(cls, kwargs, field):
    with pytest.raises(ConfigError, match=rf"^world\.{field}:"):
        cls(**kwargs)
    with pytest.raises(ConfigError, match=rf"^world\.{field}:"):
        WorldConfig(**{field.split(".")[0]: kwargs})


def test_every_field_has_help():
    from dataclasses import fields

    for cls in (WorldConfig, TinyVLMConfig, PretrainConfig):
        for f in fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def test_training_and_evaluation_seed_ranges_are_disjoint():
    cfg = WorldConfig(seed=3)
    ranges = {s: (scene_seed(cfg, s, 0), scene_seed(cfg, s, MAX_SPLIT_SIZE - 1)) for s in SPLIT_BASES}
    train_hi = max(ranges[s][1] for s in TRAIN_SPLITS)
    eval_lo = min(ranges[s][0] for s in EVAL_SPLITS)
    assert train_hi < eval_lo
    spans = sorted(ranges.values())
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))  # no two splits share a seed
    # and no two world seeds share a block
    assert scene_seed(WorldConfig(seed=2), "general", MAX_SPLIT_SIZE - 1) < scene_seed(cfg, "pretrain", 0)
    with pytest.raises(ValueError):
        scene_seed(cfg, "pretrain", MAX_SPLIT_SIZE)
