"""Golden runs: every method's first optimizer steps and final adapter on a short tiny-world run.

A refactoring of the engine must not change what any method computes. This script trains every method of
`ovip.train.methods` on the same short tiny-world run (one torch thread, fixed seeds) and writes, per method,
the logged losses of the first `STEPS` optimizer steps, the number of steps and experiences, and a SHA-256 of
the final adapter's tensors. `tests/train/test_golden.py` runs it and compares with `golden_runs.json`:
losses within 1e-6 on any machine of the recorded kind, adapters bit-identical (a hash says nothing across
CPUs, whose float kernels differ, so it is compared only on the machine kind the file was recorded on).

    python tests/train/golden.py --record        # rewrite golden_runs.json (only for an intended change)
    python tests/train/golden.py OUT.json        # write this code's numbers to OUT.json
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden_runs.json"
STEPS = 4
METHODS = ("ovip", "dpo", "dpo-online", "dpo-iterative", "ovip-offline", "mdpo", "sft", "grpo", "kto")


def recipe() -> dict:
    """The tests' tiny world (conftest.TINY_WORLD) with enough prompts for 4+ steps of every method."""
    sys.path.insert(0, str(HERE.parent))
    from conftest import TINY_WORLD

    out = copy.deepcopy(TINY_WORLD)
    out["train"].update({"max_examples": 16, "save_every": 0, "keep_checkpoints": 1})
    return out


def machine() -> dict:
    """What a bit-identical result depends on besides the code: the CPU, torch's build and its threads (the
    experiment runner's record of them)."""
    from ovip.experiment.runner import machine as where

    here = where()
    return {key: here[key] for key in ("cpu", "torch", "threads")}


def adapter_hash(folder: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "adapter_model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_all(root: Path) -> dict:
    import torch
    import yaml

    os.environ["OVIP_CACHE"] = str(root / "cache")
    from ovip.config import load
    from ovip.train.run import train

    path = root / "golden.yaml"
    path.write_text(yaml.safe_dump(recipe()))  # imports the tests' conftest, which sets its own threads
    torch.set_num_threads(1)
    out = {"machine": machine(), "steps": STEPS, "methods": {}}
    for method in METHODS:
        run = root / method
        cfg = load(path, ["--train.method", method, "--train.output_dir", str(run)])
        summary = train(cfg, overwrite=True)
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        losses = [{k: v for k, v in m.items() if k == "loss" or k.startswith("loss/")} for m in lines[:STEPS]]
        latest = (run / "checkpoints" / "latest").read_text().strip()
        out["methods"][method] = {
            "optimizer_steps": summary["step"],
            "experiences": summary["experiences/total"],
            "losses": losses,
            "adapter_sha256": adapter_hash(run / "checkpoints" / latest / "adapter"),
        }
    return out


def main(argv: list[str]) -> None:
    target = GOLDEN if argv[:1] == ["--record"] else Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        result = run_all(Path(tmp))
    target.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
