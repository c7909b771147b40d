"""How the world's cache tells a finished build from an unfinished one, without loading the builders.

A split's folder is current when its `split.json` names the world's fingerprint and size; a base model's folder
is finished when its `pretrain.json` (written last) says so and names the model's and pretraining's fingerprint.
"""

from __future__ import annotations

import json
from pathlib import Path

from ovip.config.world import WorldConfig

MARKER = "pretrain.json"  # written last into a finished base model's folder


def split_is_current(folder: Path, cfg: WorldConfig, size: int) -> bool:
    meta_path = folder / "split.json"
    if not (meta_path.exists() and (folder / "data.jsonl").exists()):
        return False
    meta = json.loads(meta_path.read_text())
    return meta.get("world") == cfg.fingerprint() and meta.get("scenes") == size


def base_model_is_finished(out_dir: str | Path, cfg: WorldConfig) -> bool:
    """The folder holds a finished pretraining of `cfg`'s model (its marker names the same fingerprint)."""
    marker = Path(out_dir) / MARKER
    if not marker.exists():
        return False
    info = json.loads(marker.read_text())
    return bool(info.get("finished")) and info.get("fingerprint") == cfg.fingerprint("model", "pretrain")
