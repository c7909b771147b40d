"""Checkpoints: adapter in PEFT format, optimizer, RNG states, buffer, data cursor and counters.

Layout of `RUN_DIR/checkpoints/step-000012/`:
    adapter/            `PeftModel.from_pretrained(base, adapter/)` loads it (full fine-tune: model/)
    optimizer.pt        AdamW state
    state.json          step, cursor, counters, the buffer's experiences and RNG
    rng.pt              torch RNG state
`RUN_DIR/checkpoints/latest` names the newest complete checkpoint; a checkpoint is written to a temporary
folder and renamed, so a run killed mid-save leaves the previous one intact. The learning-rate schedule is a
function of (step, cursor), so it needs no state of its own.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ovip.buffer import ExperienceBuffer


def save(run_dir: Path, policy, optimizer, buffer: ExperienceBuffer, state: dict, keep: int = 2) -> Path:
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:06d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if policy.finetune == "lora":
        policy.model.save_pretrained(tmp / "adapter")
    else:
        policy.model.save_pretrained(tmp / "model")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "buffer": buffer.state_dict()}))
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = root / ".latest.tmp"
    latest_tmp.write_text(name)
    os.replace(latest_tmp, root / "latest")
    older = sorted(p for p in root.glob("step-*") if p.name != name)
    for old in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if path.exists() else None


def load(path: Path, policy, optimizer, buffer: ExperienceBuffer) -> dict:
    """Restore weights, optimizer, RNG and buffer in place; return the loop state (step, cursor, counters)."""
    from safetensors.torch import load_file

    if policy.finetune == "lora":
        from peft import set_peft_model_state_dict

        weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
        set_peft_model_state_dict(policy.model, weights)
    else:
        from transformers import AutoModelForImageTextToText

        trained = AutoModelForImageTextToText.from_pretrained(path / "model")
        policy.model.load_state_dict(trained.state_dict())
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=False)["torch"])
    state = json.loads((path / "state.json").read_text())
    buffer.load_state_dict(state.pop("buffer"))
    return state
