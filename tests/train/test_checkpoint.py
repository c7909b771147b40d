"""Checkpoint files: a save never deletes before it renames, the final save never rewrites a step, and resume
takes the newest complete checkpoint whatever the pointer says. A stand-in policy writes a one-file adapter so
these run in milliseconds; the crash tests (test_crash.py) do the same with the real loop and kill -9."""

import json
import os
from types import SimpleNamespace

import torch

from ovip.buffer import ExperienceBuffer
from ovip.train import checkpoint


class OneFileAdapter:
    def save_pretrained(self, path):
        path.mkdir(parents=True)
        (path / "adapter_model.safetensors").write_bytes(b"weights")


def save(run, step, cursor, **kw):
    policy = SimpleNamespace(finetune="lora", model=OneFileAdapter())
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    return checkpoint.save(run, policy, optimizer, ExperienceBuffer(), {"step": step, "cursor": cursor}, **kw)


def test_the_final_save_of_a_saved_step_leaves_it_alone(tmp_path):
    """The end-of-run save used to delete step-N and rename a new copy in: a kill in between left `latest`
    naming a missing folder. Now it finds step-N complete and keeps it (a resume collects the prompts since
    then again, identically)."""
    path = save(tmp_path, 6, cursor=10)
    state = path / "state.json"
    before = (os.stat(state).st_ino, state.read_text())
    (tmp_path / "checkpoints" / "latest").write_text("step-000005")  # as a kill before the pointer moved
    assert save(tmp_path, 6, cursor=12, final=True) == path
    assert (os.stat(state).st_ino, state.read_text()) == before
    assert json.loads(state.read_text())["cursor"] == 10
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step-000006"
    assert save(tmp_path, 7, cursor=12, final=True).name == "step-000007"  # a new step is written


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    save(tmp_path, 3, cursor=6)
    root = tmp_path / "checkpoints"
    (root / "step-000004").mkdir()  # no state.json: not complete
    (root / ".step-000005.tmp").mkdir()  # a save that was killed
    (root / "latest").write_text("step-000009")  # a pointer to nothing
    assert checkpoint.latest(tmp_path) == root / "step-000003"
    # the next save replaces the incomplete folder and clears the dead temporary one
    save(tmp_path, 4, cursor=8)
    assert checkpoint.latest(tmp_path) == root / "step-000004" and not (root / ".step-000005.tmp").exists()
    assert checkpoint.latest(tmp_path / "nowhere") is None


def test_older_checkpoints_go_after_the_pointer_moves_in_step_order(tmp_path):
    for step in (8, 9, 10):
        save(tmp_path, step, cursor=step)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step-000009", "step-000010"]
    save(tmp_path, 1_000_000, cursor=0)  # 7 digits: ordered by number, not by name
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step-000010", "step-1000000"]
