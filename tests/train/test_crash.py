"""Crash tests: kill -9 at every phase of a checkpoint save, resume, and end with the uninterrupted run's adapter.

`OVIP_TEST_KILL_AT=PHASE@STEP` makes `ovip train` SIGKILL itself at that phase of that step's save
(`ovip.train.checkpoint`); each kill below is checked to have happened there (exit by SIGKILL, the folder in
the state that phase leaves) before the next resume. The tiny-world run has at least 5 optimizer steps.
"""

import json
import signal

import pytest
import torch
from conftest import run_ovip
from safetensors.torch import load_file

from ovip.train import checkpoint

pytestmark = pytest.mark.slow  # minutes of real subprocess runs; CI runs them (only -m gpu is opt-in)


def adapter(path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "adapter" / "adapter_model.safetensors"))


def assert_same_run(run, reference):
    a, b = adapter(checkpoint.latest(reference)), adapter(checkpoint.latest(run))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda line: {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}  # noqa: E731
    lines = lambda r: [strip(x) for x in (r / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert lines(run) == lines(reference)
    summary = lambda r: json.loads((r / "summary.json").read_text())  # noqa: E731
    assert summary(run) == summary(reference)


def killed(args, environ, spec):
    out = run_ovip(args, {**environ, "OVIP_TEST_KILL_AT": spec}, timeout=600)
    assert out.returncode == -signal.SIGKILL, (
        f"not killed at {spec}: exit {out.returncode}\n{out.stderr[-2000:]}"
    )


def pointer(run) -> str:
    return (run / "checkpoints" / "latest").read_text().strip()


def test_kill_at_each_phase_of_periodic_saves_then_resume(tiny_world, uninterrupted_run):
    root, recipe, environ = tiny_world
    run = root / "crash-periodic"
    killed(["train", "--config", str(recipe), "--train.output_dir", str(run)], environ, "writing@2")
    # the adapter of step 2 is half written in a hidden folder; step 1 is the newest complete checkpoint
    assert (run / "checkpoints" / ".step-000002.tmp" / "adapter").is_dir()
    assert checkpoint.latest(run).name == "step-000001" == pointer(run)

    resume = ["train", "--resume", str(run)]
    killed(resume, environ, "before_rename@3")
    assert (
        checkpoint.latest(run).name == "step-000002" and (run / "checkpoints" / ".step-000003.tmp").is_dir()
    )

    killed(resume, environ, "after_rename@4")
    # step 4 is complete but the pointer still names step 3: resume must not trust the pointer
    assert pointer(run) == "step-000003" and checkpoint.latest(run).name == "step-000004"

    killed(resume, environ, "after_pointer@5")
    # the pointer moved before anything older was deleted (the killed saves of steps 4 and 5 deleted nothing)
    assert pointer(run) == "step-000005"
    assert [p.name for p in checkpoint.checkpoints(run)] == [f"step-00000{i}" for i in (2, 3, 4, 5)]

    out = run_ovip(resume, environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_run(run, uninterrupted_run)
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_kill_during_the_final_save_then_resume(tiny_world, uninterrupted_run):
    """save_every 4: step 4 is saved periodically, the last step (5 or more, not a multiple of 4) only by the
    end-of-run save, which is killed before and then after its rename; the run still ends as the uninterrupted
    one."""
    root, recipe, environ = tiny_world
    final = checkpoint.latest(uninterrupted_run).name
    assert int(final.split("-")[1]) > 4 and int(final.split("-")[1]) % 4, (
        f"the tiny run's last step is {final}"
    )
    run = root / "crash-final"
    start = ["train", "--config", str(recipe), "--train.output_dir", str(run), "--train.save_every", "4"]
    killed(start, environ, "before_rename@final")
    assert checkpoint.latest(run).name == "step-000004" and not (run / "summary.json").exists()

    killed(["train", "--resume", str(run)], environ, "after_rename@final")
    assert checkpoint.latest(run).name == final and pointer(run) == "step-000004"
    assert not (run / "summary.json").exists()

    out = run_ovip(["train", "--resume", str(run)], environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert pointer(run) == final  # the skipped final save still moved the pointer
    assert_same_run(run, uninterrupted_run)
