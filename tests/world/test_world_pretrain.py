"""Pretraining runs end to end on a tiny config, writes a loadable checkpoint, and is cached by config hash."""

import json

from ovip.world.build import ensure_base_model
from ovip.world.config import WorldConfig
from ovip.world.model import load

TINY = WorldConfig(
    pretrain_size=8, pretrain_qa_per_scene=1,
    model={"vision_hidden": 16, "vision_layers": 1, "text_hidden": 32, "text_layers": 2, "heads": 2},
    pretrain={"steps": 4, "batch_size": 4, "warmup_steps": 1, "vision_steps": 3},
)


def test_pretrain_writes_a_checkpoint_and_is_cached(tmp_path):
    steps = []
    path = ensure_base_model(tmp_path, TINY, progress=False)
    info = json.loads((path / "pretrain.json").read_text())
    assert info["finished"] and info["steps"] == 4 and info["fingerprint"] in path.name
    assert info["loss_last50"] < info["loss_first"]  # it learns something even in 4 steps
    model, processor = load(path)
    assert model.config.text_config.num_hidden_layers == 2
    stamp = (path / "pretrain.json").stat().st_mtime_ns
    from ovip.world import pretrain as module

    again = module.pretrain(path, TINY, progress=False, on_step=lambda *a: steps.append(a[0]))
    assert again == path and steps == [] and (path / "pretrain.json").stat().st_mtime_ns == stamp
    other = ensure_base_model(tmp_path, WorldConfig(**{**TINY.to_dict(), "pretrain": {**TINY.to_dict()["pretrain"], "lr": 1e-4}}),
                              progress=False)
    assert other != path
