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
        elif args[0] not in ("report", "export"):  # these read run folders (and their recipe), they take none
            args += ["--config", str(recipe)]
        out = subprocess.run(
            [sys.executable, "-m", "ovip.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert out.returncode == 0, f"{cmd}\n{out.stderr[-3000:]}"


def test_readme_services_commands_run(tmp_path, tiny_world):
    """The world's judge and images servers started as docs/training.md says, and the overlapped run against them
    (ports swapped for free ones, the tiny recipe for `world`)."""
    import socket
    import time

    import httpx

    text = (README.parent / "docs" / "training.md").read_text()
    block = text.split("<!-- services:begin -->", 1)[1].split("<!-- services:end -->", 1)[0]
    cmds = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith("ovip ")]
    assert len(cmds) == 3 and cmds[0].endswith("&") and cmds[1].endswith("&")
    ports = {}
    for port in ("8000", "8001"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[port] = str(sock.getsockname()[1])

    def swap(cmd: str) -> list[str]:
        for old, new in ports.items():
            cmd = cmd.replace(f"--port {old}", f"--port {new}").replace(f":{old}/", f":{new}/")
        return shlex.split(cmd.rstrip("&"))[1:]

    _, recipe, env = tiny_world
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "ovip.cli", *swap(c)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for c in cmds[:2]
    ]
    try:
        for port in ports.values():
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
        args = swap(cmds[2])
        args[args.index("--config") + 1] = str(recipe)
        out = subprocess.run(
            [sys.executable, "-m", "ovip.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert out.returncode == 0, f"{cmds[2]}\n{out.stderr[-3000:]}"
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


def test_readme_is_short_and_reaches_every_manual():
    """The README is the front page (under 10,000 characters); the manuals are in docs/, each linked from it."""
    import re

    text = README.read_text()
    assert len(text) < 10_000, len(text)
    linked = set(re.findall(r"\]\((docs/[^)#]+)\)", text))
    root = README.parent
    assert all((root / link).is_file() for link in linked), [l for l in linked if not (root / l).is_file()]  # noqa: E741
    manuals = {f"docs/{p.name}" for p in (root / "docs").glob("*.md")}
    assert manuals <= linked, sorted(manuals - linked)
