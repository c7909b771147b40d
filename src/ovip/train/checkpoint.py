"""Checkpoints: adapter in PEFT format, optimizer, RNG states, buffer, data cursor and counters.

Layout of `RUN_DIR/checkpoints/step-000012/`:
    adapter/            `PeftModel.from_pretrained(base, adapter/)` loads it (full fine-tune: model/)
    optimizer.pt        AdamW state
    state.json          step, cursor, counters, the buffer's experiences and RNG (written last)
    rng.pt              torch RNG state
    rank-1/ ...         with N ranks (`ovip.train.distributed`): each other rank's state.json (its buffer,
                        batches in flight, counters) and rng.pt; optimizer.pt too where the engine shards it
`RUN_DIR/checkpoints/latest` names the newest checkpoint, for people and for `--adapter RUN_DIR`.

The adapter is written once, by rank 0. Every rank writes its part into the temporary folder and waits for
the others before rank 0 writes the top state.json, so a checkpoint is complete only when every rank's part
is in it, and a resume needs the same number of ranks (state.json's `world_size`).

A save never puts an older checkpoint at risk: it writes `.step-N.tmp/`, renames it to `step-N/` (a rename is
atomic), moves the pointer, and only then deletes checkpoints beyond the newest `keep`. The end-of-run save
of a step that a periodic save already wrote is skipped: the weights are the same, and the prompts collected
since are collected again, identically, by a resume. Resuming does not trust the pointer: it takes the newest
`step-N/` that holds its state.json, so a run killed at any point of a save resumes from the newest complete
checkpoint. The learning-rate schedule is a function of (step, cursor), so it needs no state of its own.

Crash tests set `OVIP_TEST_KILL_AT=PHASE[@STEP|@final]` to make the process SIGKILL itself at a phase of a
save: `writing` (adapter written, the rest not), `before_rename`, `after_rename` (before the pointer moves),
`after_pointer` (before older checkpoints are deleted) or `saved` (the checkpoint complete on every rank);
`OVIP_TEST_KILL_RANK=R` (default 0) names the rank that kills itself, `OVIP_TEST_KILL_SIGNAL=SIGSTOP` makes it
hang instead (the others' collectives then time out). Unset, it costs one environment lookup per save.
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
KILL_RANK_ENV = "OVIP_TEST_KILL_RANK"
KILL_SIGNAL_ENV = "OVIP_TEST_KILL_SIGNAL"
_STEP = re.compile(r"step-(\d+)")


def save(
    run_dir: Path,
    policy,
    optimizer,
    buffer: ExperienceBuffer,
    state: dict,
    keep: int = 2,
    final: bool = False,
    ranks=None,
    train_model=None,
) -> Path:
    """Write the checkpoint of `state["step"]` (see module doc); returns its folder. With several ranks every
    rank calls it at the same point, with its own `state` and `buffer`."""
    rank, world = (ranks.rank, ranks.world) if ranks is not None else (0, 1)
    barrier = ranks.barrier if ranks is not None else lambda: None
    root = run_dir / "checkpoints"
    step = state["step"]
    name = f"step-{step:06d}"
    target = root / name
    if final and complete(target):
        if rank == 0:
            _point(root, name)  # a kill may have stopped the periodic save before its pointer moved
        barrier()
        return target
    tmp = root / f".{name}.tmp"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".step-*"):  # left by a process killed mid-save; never read
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    barrier()  # the folder exists, and no rank writes into a folder rank 0 is about to delete
    full = ranks.adapter_state(train_model) if ranks is not None else None  # a collective when sharded
    if rank == 0:
        gathered = {} if full is None else {"state_dict": full}
        if policy.finetune == "lora":
            policy.model.save_pretrained(tmp / "adapter", **gathered)
        else:
            policy.model.save_pretrained(tmp / "model", **gathered)
    _kill_point("writing", step, final, rank)
    part = tmp if rank == 0 else tmp / f"rank-{rank}"
    part.mkdir(exist_ok=True)
    if rank == 0 or (ranks is not None and ranks.sharded):  # replicated moments are saved once
        torch.save(optimizer.state_dict(), part / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state()}, part / "rng.pt")
    if rank > 0:
        (part / "state.json").write_text(json.dumps({**state, "buffer": buffer.state_dict()}))
    barrier()  # every rank's part is written
    if rank == 0:
        (tmp / "state.json").write_text(
            json.dumps({**state, "world_size": world, "buffer": buffer.state_dict()})
        )
        _kill_point("before_rename", step, final, rank)
        if target.exists():  # an incomplete folder of this step: set it aside, never delete first
            os.replace(target, root / f".{name}.old")
        os.replace(tmp, target)
        _kill_point("after_rename", step, final, rank)
        _point(root, name)
        _kill_point("after_pointer", step, final, rank)
        for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(root / f".{name}.old", ignore_errors=True)
    barrier()  # complete on disk before any rank moves on
    _kill_point("saved", step, final, rank)
    return target


def complete(path: Path) -> bool:
    """A checkpoint folder whose state.json exists: everything else was written before it."""
    return path.is_dir() and (path / "state.json").is_file()


def checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first (by step number, not by name)."""
    root = run_dir / "checkpoints"
    found = [
        (int(m.group(1)), p) for p in root.glob("step-*") if (m := _STEP.fullmatch(p.name)) and complete(p)
    ]
    return [p for _, p in sorted(found)]


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, whatever the pointer says (a kill may have stopped it moving)."""
    found = checkpoints(run_dir)
    return found[-1] if found else None


def load(
    path: Path,
    policy,
    optimizer,
    buffer: ExperienceBuffer,
    rank: int = 0,
    world: int = 1,
    optimizer_now: bool = True,
) -> dict:
    """Restore weights, optimizer, RNG and buffer in place; return the loop state (step, cursor, counters) of
    `rank`. `optimizer_now=False` leaves the optimizer to `load_optimizer` (an engine that shards it loads it
    after `Accelerator.prepare`)."""
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    saved_world = state.get("world_size", 1)
    if saved_world != world:
        raise ValueError(
            f"{path} was written by {saved_world} rank(s); resume it with {saved_world} "
            f"(this launch has {world}): each rank's buffer and batches in flight are in it"
        )
    if policy.finetune == "lora":
        from peft import set_peft_model_state_dict

        weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
        set_peft_model_state_dict(policy.model, weights)
    else:
        from transformers import AutoModelForImageTextToText

        trained = AutoModelForImageTextToText.from_pretrained(path / "model")
        policy.model.load_state_dict(trained.state_dict())
    part = path if rank == 0 else path / f"rank-{rank}"
    if optimizer_now:
        load_optimizer(path, optimizer, rank, sharded=False)
    torch.set_rng_state(torch.load(part / "rng.pt", weights_only=False)["torch"])
    if rank > 0:
        state = json.loads((part / "state.json").read_text())
    buffer.load_state_dict(state.pop("buffer"))
    return state


def load_optimizer(path: Path, optimizer, rank: int = 0, sharded: bool = False) -> None:
    """The AdamW moments: saved once when every rank holds the same (one process, DDP), per rank when sharded."""
    part = path if rank == 0 or not sharded else path / f"rank-{rank}"
    optimizer.load_state_dict(torch.load(part / "optimizer.pt", weights_only=False))


def _point(root: Path, name: str) -> None:
    pointer = root / ".latest.tmp"
    pointer.write_text(name)
    os.replace(pointer, root / "latest")


def _kill_point(phase: str, step: int, final: bool, rank: int = 0) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec or rank != int(os.environ.get(KILL_RANK_ENV, "0")):
        return
    want, _, at = spec.partition("@")
    if want == phase and (not at or at == str(step) or (at == "final" and final)):
        os.kill(os.getpid(), getattr(signal, os.environ.get(KILL_SIGNAL_ENV, "SIGKILL")))
