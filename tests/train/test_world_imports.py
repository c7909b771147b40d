"""The world is resolved before training: over a world already built, `ovip train --config world` (and with
GRPO) never imports the world's split writer or its pretraining (`ovip.world.resolve.prepare` gives the
training path plain paths)."""

import json
import subprocess
import sys

from conftest import run_ovip

BUILDERS = ("ovip.world.pretrain", "ovip.world.splits")


def test_training_over_a_built_world_never_imports_its_builders(tiny_world, tmp_path):
    _, recipe, environ = tiny_world
    for command in (["world", "build"], ["world", "pretrain"]):
        out = run_ovip([*command, "--config", str(recipe)], environ, timeout=900)
        assert out.returncode == 0, out.stderr[-2000:]
    for method in ("ovip", "grpo"):
        args = ["train", "--config", str(recipe), "--train.method", method, "--train.max_examples", "4",
                "--train.output_dir", str(tmp_path / method)]  # fmt: skip
        code = (
            "import json, sys\n"
            "from ovip.cli import main\n"
            f"rc = main({args!r})\n"
            f"print(json.dumps([rc, sorted(m for m in sys.modules if m in {BUILDERS!r})]))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=900
        )
        rc, imported = json.loads(done.stdout.strip().splitlines()[-1])
        assert rc == 0, done.stderr[-2000:]
        assert imported == [], f"{method}: the training path imported {imported}"
