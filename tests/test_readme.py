
"""The README's stage commands run as written (on a shrunk world, so the suite stays fast).

Each `ovip ...` line of the README's stages block is run in a fresh folder with `OVIP_CACHE` pointing there;
`--config world` (or no --config) is replaced by the tiny recipe of `tests/train/test_e2e.py`, which keeps the
code path and shrinks only sizes.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # minutes of real subprocess runs; CI runs them (only -m gpu is opt-in)

README = Path(__file__).resolve().parents[1] / "README.md"


def stage_commands() -> list[str]:
    text = README.read_text()
    block = text.split("<!-- stages:begin -->", 1)[1].split("<!-- stages:end -->", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith("ovip ")]


def test_readme_has_stage_commands():
    cmds = stage_commands()
    assert any(c.startswith("ovip quickstart") for c in cmds)
    assert any(c.startswith("ovip train") for c in cmds)
    assert any(c.startswith("ovip report") for c in cmds)


def test_readme_stage_commands_run(tmp_path, tiny_world_recipe):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_world_recipe))
    env = {**os.environ, "OVIP_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    for cmd in stage_commands():
        args = shlex.split(cmd)[1:]
        if "--config" in args:
            args[args.index("--config") + 1] = str(recipe)
        elif args[0] != "report":  # the report reads run folders, it takes no recipe
            args += ["--config", str(recipe)]
        out = subprocess.run([sys.executable, "-m", "ovip.cli", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"{cmd}\n{out.stderr[-3000:]}"
