"""From an ovip `Config` to the built-in world's parts on disk: its `WorldConfig`, its cache folder, its splits
and its base model (built and cached on first use). Used by training, evaluation and the CLI alike."""

from __future__ import annotations

import os
from pathlib import Path

from ovip.config import Config, ConfigError


def world_config(cfg: Config):
    """The `WorldConfig` of `cfg.world`; a bad key or value is a one-line ConfigError naming it."""
    from ovip.world.config import WorldConfig

    try:
        return WorldConfig(**cfg.world)
    except TypeError as e:  # an unknown key: WorldConfig.__init__() got an unexpected keyword argument ...
        raise ConfigError(f"world: {e}") from None


def world_cache(cfg: Config | None = None) -> Path:
    """Where the world's splits and base model are cached: $OVIP_CACHE, else ~/.cache/ovip."""
    return Path(os.environ.get("OVIP_CACHE", Path.home() / ".cache" / "ovip"))


def model_path(cfg: Config) -> str:
    """The policy's weights: the built-in world's pretrained tiny VLM (built and cached on first use) or a path."""
    if cfg.model.path != "world":
        return cfg.model.path
    from ovip.world.build import ensure_base_model

    return str(ensure_base_model(world_cache(cfg), world_config(cfg)))


def world_splits(cfg: Config, splits=None) -> dict[str, Path]:
    """The world's splits as data.jsonl + PNG folders (written on first use, then reused)."""
    from ovip.world.build import build_world

    wc = world_config(cfg)
    return build_world(world_cache(cfg) / f"world-{wc.fingerprint()}", wc, splits=splits)
