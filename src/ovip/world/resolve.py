"""From an ovip `Config` to the built-in world's parts on disk: its cache folder, its splits and its base model
(built and cached on first use). Used by training, evaluation, analyses and the CLI alike.

`prepare(cfg)` resolves the world once, before a run: `train.data: world` becomes the preference split's
data.jsonl and `model.path: world` the pretrained base model's folder, so the training path sees plain paths
and never imports the world's split writer or its pretraining (they are imported only to build what is not
built yet).
"""

from __future__ import annotations

import os
from pathlib import Path

from ovip.config import Config, from_dict, to_dict


def world_cache(cfg: Config | None = None) -> Path:
    """Where the world's splits and base model are cached: $OVIP_CACHE, else ~/.cache/ovip."""
    return Path(os.environ.get("OVIP_CACHE", Path.home() / ".cache" / "ovip"))


def model_path(cfg: Config) -> str:
    """The policy's weights: the built-in world's pretrained tiny VLM (built and cached on first use) or a path."""
    if cfg.model.path != "world":
        return cfg.model.path
    from ovip.world.build import ensure_base_model

    return str(ensure_base_model(world_cache(cfg), cfg.world))


def world_splits(cfg: Config, splits=None) -> dict[str, Path]:
    """The world's splits as data.jsonl + PNG folders (written on first use, then reused)."""
    from ovip.world.build import build_world

    return build_world(world_cache(cfg) / f"world-{cfg.world.fingerprint()}", cfg.world, splits=splits)


def prepare(cfg: Config) -> Config:
    """A copy of `cfg` whose `train.data` and `model.path` name files: the world's preference split and base
    model where they say `world` (built now if not yet); anything else is left as it is."""
    out = from_dict(to_dict(cfg))
    if out.train.data == "world":
        out.train.data = str(world_splits(cfg, ["preference"])["preference"] / "data.jsonl")
    if out.model.path == "world":
        out.model.path = model_path(cfg)
    return out
