"""Checkpoints: adapter in PEFT format, optimizer, RNG states, buffer, data cursor and counters.

Layout of `RUN_DIR/checkpoints/step-000012/`:
    adapter/            `PeftModel.from_pretrained(base, adapter/)` loads it (full fine-tune: model/)
    optimizer.pt        AdamW state
    state.json          step, cursor, counters, the buffer's experiences and RNG (written last)
    rng.pt              torch RNG state
`RUN_DIR/checkpoints/latest` names the newest checkpoint, for people and for `--adapter RUN_DIR`.

A save never puts an older checkpoint at risk: it writes `.step-N.tmp/`, renames it to `step-N/` (a rename is
atomic), moves the pointer, and only then deletes checkpoints beyond the newest `keep`. The end-of-run save
of a step that a periodic save already wrote is skipped: the weights are the same, and the prompts collected
since are collected again, identically, by a resume. Resuming does not trust the pointer: it takes the newest
`step-N/` that holds its state.json, so a run killed at any point of a save resumes from the newest complete
checkpoint. The learning-rate schedule is a function of (step, cursor), so it needs no state of its own.

Crash tests set `OVIP_TEST_KILL_AT=PHASE[@STEP|@final]` to make the process SIGKILL itself at a phase of a
save: `writing` (adapter written, the rest not), `before_rename`, `after_rename` (before the pointer moves)
or `after_pointer` (before older checkpoints are deleted). Unset, it costs one environment lookup per save.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import torch

from ovip.buffer import ExperienceBuffer

KILL_ENV = "OVIP_TEST_KILL_AT"
_STEP = re.compile(r"step-(\d+)")


def save(run_dir: Path, policy, optimizer, buffer: ExperienceBuffer, state: dict, keep: int = 2,
         final: bool = False) -> Path:
    """Write the checkpoint of `state["step"]` (see module doc); returns its folder."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    step = state["step"]
    name = f"step-{step:06d}"
    target = root / name
    if final and complete(target):
        _point(root, name)  # a kill may have stopped the periodic save before its pointer moved
        return target
    for stale in root.glob(".step-*"):  # left by a process killed mid-save; never read
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".{name}.tmp"
    tmp.mkdir()
    if policy.finetune == "lora":
        policy.model.save_pretrained(tmp / "adapter")
    else:
        policy.model.save_pretrained(tmp / "model")
    _kill_point("writing", step, final)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "buffer": buffer.state_dict()}))
    _kill_point("before_rename", step, final)
    if target.exists():  # an incomplete folder of this step: set it aside, never delete first
        os.replace(target, root / f".{name}.old")
    os.replace(tmp, target)
    _kill_point("after_rename", step, final)
    _point(root, name)
    _kill_point("after_pointer", step, final)
    for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(root / f".{name}.old", ignore_errors=True)
    return target


def complete(path: Path) -> bool:
    """A checkpoint folder whose state.json exists: everything else was written before it."""
    return path.is_dir() and (path / "state.json").is_file()


def checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first (by step number, not by name)."""
    root = run_dir / "checkpoints"
    found = [(int(m.group(1)), p) for p in root.glob("step-*") if (m := _STEP.fullmatch(p.name)) and complete(p)]
    return [p for _, p in sorted(found)]


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, whatever the pointer says (a kill may have stopped it moving)."""
    found = checkpoints(run_dir)
    return found[-1] if found else None


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


def _point(root: Path, name: str) -> None:
    pointer = root / ".latest.tmp"
    pointer.write_text(name)
    os.replace(pointer, root / "latest")


def _kill_point(phase: str, step: int, final: bool) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    want, _, at = spec.partition("@")
    if want == phase and (not at or at == str(step) or (at == "final" and final)):
        os.kill(os.getpid(), signal.SIGKILL)
