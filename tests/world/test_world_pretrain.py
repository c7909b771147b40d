"""Pretraining runs end to end on a tiny config, writes a loadable checkpoint, and is cached by config hash."""

import json

from ovip.config.world import WorldConfig
from ovip.world.build import ensure_base_model
from ovip.world.model import load

TINY = WorldConfig(
    pretrain_size=8,
    pretrain_qa_per_scene=1,
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
    other = ensure_base_model(
        tmp_path,
        WorldConfig(**{**TINY.to_dict(), "pretrain": {**TINY.to_dict()["pretrain"], "lr": 1e-4}}),
        progress=False,
    )
    assert other != path


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_pretraining_gives_the_same_weights_on_a_busy_and_an_idle_machine(tmp_path):
    """Pretraining is fixed by its config (steps, seeds, threads), never by the clock: a second run while
    another process keeps a core busy gives bit-identical weights, and pretrain.json says what ran."""
    import subprocess
    import sys

    idle = ensure_base_model(tmp_path / "idle", TINY, progress=False)
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 60: pass"]
    )
    try:
        busy = ensure_base_model(tmp_path / "busy", TINY, progress=False)
    finally:
        burner.kill()
    a, b = _weights(idle), _weights(busy)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    info = json.loads((busy / "pretrain.json").read_text())
    assert info["steps"] == TINY.pretrain.steps and info["vision_steps"] == TINY.pretrain.vision_steps
    assert info["threads"] == TINY.pretrain.threads and info["fingerprint"] == TINY.fingerprint(
        "model", "pretrain"
    )
    assert info["torch"]


def test_an_interrupted_pretraining_is_never_taken_as_finished(tmp_path):
    import pytest

    from ovip.world import pretrain as module

    folder = tmp_path / "base"

    def stop(step, *_):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        module.pretrain(folder, TINY, progress=False, on_step=stop)
    assert not module.is_finished(folder, TINY) and not folder.exists()
    assert ensure_base_model(tmp_path, TINY, progress=False).exists()  # and a later call trains it for real
