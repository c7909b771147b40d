"""Data parallelism on CPU: 2 ranks over gloo, launched as users launch them (`accelerate launch --num_processes 2
-m ovip.cli train ...`, or `ovip train --nproc 2`), on the tiny world.

The ranks run the code a GPU run runs (accelerate's DDP; only the process-group backend differs: gloo here,
NCCL on GPUs). What is checked: one 2-rank optimizer step equals one single-process step over the same global
batch; a 2-rank run is deterministic and writes one set of logs; a rank killed with SIGKILL after its first
checkpoint stops the job, and a 2-rank resume ends with the uninterrupted run's adapter; one rank's failing service
stops every rank with a checkpoint.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ovip.train import checkpoint
from ovip.train.distributed import free_port, launch_command

HERE = Path(__file__).resolve().parent
ACCELERATE = HERE.parents[1] / "src" / "ovip" / "configs" / "accelerate"
DDP = ACCELERATE / "ddp.yaml"
README = HERE.parents[1] / "docs" / "distributed.md"  # its `ranks` block


def accelerate_with(config: str, args: list[str], environ: dict, script: list[str] | None = None, **kw):
    """`accelerate launch --config_file configs/accelerate/CONFIG --num_processes 2 -m ovip.cli ARGS` (or
    SCRIPT ARGS), on a free rendezvous port."""
    target = script if script is not None else ["-m", "ovip.cli"]
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE / config),
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        *target,
        *args,
    ]
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, **kw)


def accelerate(args: list[str], environ: dict, script: list[str] | None = None, **kw):
    return accelerate_with("ddp.yaml", args, environ, script, **kw)


def readme_commands() -> list[list[str]]:
    """The CPU data-parallel commands of docs/distributed.md (its `ranks` block), as argument lists."""
    text = README.read_text()
    block = text.split("<!-- ranks:begin -->", 1)[1].split("<!-- ranks:end -->", 1)[0]
    return [
        shlex.split(line.split("#", 1)[0])
        for line in block.splitlines()
        if line.startswith(("ovip ", "accelerate "))
    ]


def as_test(cmd: list[str], recipe: Path, run: Path) -> list[str]:
    """A docs/distributed.md command on the tiny recipe, in `run`, with a free port: the argument list to execute."""
    cmd = list(cmd)
    cmd[cmd.index("--config") + 1] = str(recipe)
    cmd[cmd.index("--train.output_dir") + 1] = str(run)
    if cmd[0] == "accelerate":
        return [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--main_process_port",
            str(free_port()),
            *cmd[2:],
        ]
    return [sys.executable, "-m", "ovip.cli", *cmd[1:]]


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.latest(run) / "adapter" / "adapter_model.safetensors"))


def same_adapter(a: Path, b: Path) -> bool:
    x, y = adapter(a), adapter(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def lines(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock keys."""
    return [
        {k: v for k, v in json.loads(x).items() if not k.startswith("time/")}
        for x in (run / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def two_ranks(tiny_world):
    """A 2-rank tiny-world run launched by the README's `accelerate launch` line, a checkpoint after every step."""
    root, recipe, environ = tiny_world
    run = root / "two-ranks"
    cmd = next(c for c in readme_commands() if c[0] == "accelerate")
    out = subprocess.run(as_test(cmd, recipe, run), env=environ, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    return run


def test_one_two_rank_step_equals_one_single_process_step(tmp_path):
    """The same 4 experiences: 1 process takes all 4 (4 micro-batches), each of 2 ranks takes 2 (2 micro-batches,
    the first under no_sync) and DDP averages. The gradients AdamW receives and the weights after the step agree
    to float32 rounding. Measured (this CPU, torch 2.13): gradients max |difference| 7.5e-9 with the largest
    gradient 9.8e-2 (7.6e-8 relative), weights after the lr 1e-3 step 1.5e-8, loss 6e-8, gradient norm and loss
    terms equal. Asserted: gradients within 1e-6 of the largest gradient, weights within 1e-6."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, str(HERE / "dist_worker.py"), "step", str(tmp_path / "one")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = accelerate(
        ["step", str(tmp_path / "two")], environ, script=[str(HERE / "dist_worker.py")], timeout=300
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = torch.load(tmp_path / "one" / "step.pt"), torch.load(tmp_path / "two" / "step.pt")
    assert a["grads"].keys() == b["grads"].keys() and len(a["grads"]) > 0
    scale = max(float(g.abs().max()) for g in a["grads"].values())
    grad_diff = max(float((a["grads"][k] - b["grads"][k]).abs().max()) for k in a["grads"])
    weight_diff = max(float((a["weights"][k] - b["weights"][k]).abs().max()) for k in a["weights"])
    assert scale > 1e-3  # every LoRA weight has a gradient worth comparing
    assert all(float(g.abs().max()) > 0 for g in a["grads"].values())
    assert grad_diff <= 1e-6 * scale, (grad_diff, scale)
    assert weight_diff <= 1e-6, weight_diff
    for key in ("loss", "grad_norm", "loss/text", "loss/image", "rewards/margins"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-5, abs=1e-7), key
    assert a["metrics"]["buffer/size"] == b["metrics"]["buffer/size"] == 0


def test_one_rank_failing_service_stops_every_rank_with_a_checkpoint(tmp_path):
    """Rank 1's judge refuses every call: past its error budget both ranks stop after the same batch, each with
    the message naming rank 1, and the checkpoint holds both ranks' parts (a resume sends the batch again)."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = accelerate(["budget", str(tmp_path)], environ, script=[str(HERE / "dist_worker.py")], timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for rank in (0, 1):
        message = (tmp_path / f"rank-{rank}.txt").read_text()
        assert message.startswith("ServiceFailure: rank 1: judge:"), message
        assert "rank 0:" not in message
    saved = checkpoint.latest(tmp_path / "run")
    assert saved is not None and (saved / "rank-1" / "state.json").is_file()
    state = json.loads((saved / "state.json").read_text())
    assert state["world_size"] == 2 and state["inflight"]  # the failing batch is saved as still in flight


@pytest.mark.slow
def test_two_rank_run_is_deterministic_and_logs_once(tiny_world, two_ranks):
    """The README's `ovip train --nproc 2` (the shortcut) gives the adapter of its plain accelerate launch, bit for
    bit; rank 0 writes the one metrics.jsonl and experiences.jsonl, with every rank's prompts counted."""
    root, recipe, environ = tiny_world
    again = root / "two-ranks-again"
    cmd = next(c for c in readme_commands() if c[0] == "ovip")
    assert cmd[:4] == ["ovip", "train", "--nproc", "2"]
    out = subprocess.run(
        as_test(cmd, recipe, again), env=environ, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert same_adapter(two_ranks, again)
    assert lines(two_ranks) == lines(again)
    assert json.loads(out.stdout)["ranks"] == 2  # one summary printed, by rank 0
    summary = json.loads((two_ranks / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["prompts/total"] == summary["prompts"] == 12
    assert len(summary["time/sync_wait_per_rank"]) == 2
    metrics = (two_ranks / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == summary["step"] >= 3 and all(
        json.loads(x)["step"] == i + 1 for i, x in enumerate(metrics)
    )
    assert "time/sync_wait" in json.loads(metrics[0])
    experiences = (two_ranks / "experiences.jsonl").read_text().splitlines()
    assert len(experiences) == summary["experiences/total"]
    ids = {json.loads(x)["example_id"] for x in experiences}
    assert len(ids) > 6  # prompts of both ranks (each rank samples every other prompt)
    assert sorted(p.name for p in two_ranks.glob("*.jsonl")) == ["experiences.jsonl", "metrics.jsonl"]
    assert (two_ranks / "train.log").is_file() and (two_ranks / "train-rank1.log").is_file()
    saved = checkpoint.latest(two_ranks)
    assert (saved / "rank-1" / "state.json").is_file() and (saved / "rank-1" / "rng.pt").is_file()
    assert not (saved / "rank-1" / "adapter").exists()  # the adapter is saved once


def _workers_of(run: Path) -> list[int]:
    """Processes still running with `run` on their command line (the launcher's ranks)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(run) in cmdline and int(pid) != os.getpid():
                found.append(int(pid))
    return found


@pytest.mark.slow
def test_sigkill_one_rank_after_its_first_checkpoint_then_resume(tiny_world, two_ranks):
    """Rank 1 SIGKILLs itself once checkpoint 1 is complete; rank 0's next collective fails (or the launcher stops
    it): the job ends, no rank hangs. `--resume` on 2 ranks then ends with the uninterrupted run's adapter,
    metrics and summary."""
    root, recipe, environ = tiny_world
    run = root / "rank-killed"
    kill = {**environ, "OVIP_TEST_KILL_AT": "saved@1", "OVIP_TEST_KILL_RANK": "1"}
    start = time.time()
    out = accelerate(
        [
            "train",
            "--config",
            str(recipe),
            "--train.output_dir",
            str(run),
            "--train.collective_timeout",
            "60",
        ],
        kill,
        timeout=300,
    )
    assert out.returncode != 0, out.stderr[-3000:]
    assert "Signals.SIGKILL" in out.stderr or "-9" in out.stderr, out.stderr[-3000:]
    assert time.time() - start < 240
    assert not _workers_of(run)  # every rank is gone
    assert checkpoint.latest(run).name == "step-000001" and not (run / "summary.json").exists()

    resumed = accelerate(["train", "--resume", str(run)], environ, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert same_adapter(two_ranks, run)
    assert lines(run) == lines(two_ranks)

    def strip(r):
        return {
            k: v for k, v in json.loads((r / "summary.json").read_text()).items() if not k.startswith("time/")
        }

    assert strip(run) == strip(two_ranks)


@pytest.mark.slow
def test_a_hung_rank_ends_the_job_after_the_collective_timeout(tiny_world):
    """Rank 1 stops itself (SIGSTOP) once checkpoint 1 is complete; its socket stays open, so rank 0 waits in its
    next collective until `train.collective_timeout` (10 s), fails, and the launcher ends the job (SIGTERM, then
    SIGKILL for the stopped rank after torchrun's grace period)."""
    root, recipe, environ = tiny_world
    run = root / "rank-hung"
    hang = {
        **environ,
        "OVIP_TEST_KILL_AT": "saved@1",
        "OVIP_TEST_KILL_RANK": "1",
        "OVIP_TEST_KILL_SIGNAL": "SIGSTOP",
    }
    start = time.time()
    try:
        out = accelerate(
            [
                "train",
                "--config",
                str(recipe),
                "--train.output_dir",
                str(run),
                "--train.collective_timeout",
                "10",
            ],
            hang,
            timeout=240,
        )
    finally:
        for pid in _workers_of(run):  # never leave a stopped rank behind, whatever happened
            os.kill(pid, signal.SIGKILL)
    assert out.returncode != 0
    assert time.time() - start < 200
    assert "timed out" in out.stderr.lower() or "timeout" in out.stderr.lower(), out.stderr[-3000:]
    assert checkpoint.latest(run).name == "step-000001" and not (run / "summary.json").exists()


def test_a_checkpoint_resumes_only_on_as_many_ranks(tmp_path):
    """A 2-rank checkpoint holds each rank's buffer and batches in flight: one process cannot take it over."""
    from ovip.buffer import ExperienceBuffer

    saved = tmp_path / "checkpoints" / "step-000001"
    saved.mkdir(parents=True)
    (saved / "state.json").write_text(json.dumps({"step": 1, "world_size": 2, "buffer": {}}))
    with pytest.raises(ValueError, match="written by 2 rank.*resume it with 2"):
        checkpoint.load(saved, None, None, ExperienceBuffer(), rank=0, world=1)


def test_nproc_launches_accelerate_with_the_ddp_config():
    cmd = launch_command(2, ["train", "--nproc", "2", "--config", "world", "--loss.beta", "0.2"], port=29555)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--config_file") + 1] == str(DDP) and DDP.is_file()
    assert (
        cmd[cmd.index("--num_processes") + 1] == "2" and cmd[cmd.index("--main_process_port") + 1] == "29555"
    )
    assert cmd[-7:] == ["-m", "ovip.cli", "train", "--config", "world", "--loss.beta", "0.2"]
    assert launch_command(4, ["train", "--nproc=4"], port=1)[-3:] == ["-m", "ovip.cli", "train"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "grpo"])
def test_other_methods_on_two_ranks(tiny_world, tmp_path, method):
    """An offline method (`dpo`: the ranks agree when the phase drains and how many updates it makes) and GRPO (the
    reference's per-token log-probs inside the DDP step), with the overlapped pipeline: both ranks end together."""
    root, recipe, environ = tiny_world
    run = tmp_path / method
    out = accelerate(
        [
            "train",
            "--config",
            str(recipe),
            "--train.output_dir",
            str(run),
            "--train.method",
            method,
            "--train.pipeline",
            "overlapped",
            "--train.collective_timeout",
            "120",
        ],
        environ,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["prompts"] == 12 and summary["step"] >= 1
    held = summary["buffer_left_per_rank"]
    assert min(held) < 1  # no step was left out: the emptiest rank could not fill another share (N / 2 = 1)
    if method == "dpo":  # trained after the whole data, in one phase: the cosine runs from the peak to 0
        lrs = [line["lr"] for line in lines(run)]
        assert lrs[0] == pytest.approx(5e-3) and lrs == sorted(lrs, reverse=True)


@pytest.mark.slow
def test_two_ranks_sampled_by_a_policy_server_are_the_local_two_ranks(tiny_world, two_ranks, tmp_path):
    """`rollout.engine server` on 2 ranks: each rank sends its share of every batch to one `ovip serve policy`, rank
    0 pushes each step's adapter once after the step both ranks took (a second load of that name would be
    refused, and stop the run), both ask for the same name: the run is the local 2-rank run, bit for bit."""
    from processes import ovip_serve

    root, recipe, environ = tiny_world
    run = root / "two-ranks-server"
    serve = ("--config", str(recipe), "--adapter-root", str(root))
    with ovip_serve("policy", *serve, stderr=tmp_path / "policy.txt", env=environ) as (url, _):
        server = ["--rollout.engine", "server", "--rollout.base_url", url]
        out = accelerate(
            ["train", "--config", str(recipe), "--train.output_dir", str(run), *server], environ, timeout=900
        )
    assert out.returncode == 0, out.stderr[-4000:]
    assert same_adapter(two_ranks, run)
    strip = lambda m: {k: v for k, v in m.items() if k != "rollout/logprob_gap"}  # noqa: E731
    assert [strip(m) for m in lines(run)] == lines(two_ranks)
    assert all(m["rollout/logprob_gap"] < 1e-5 for m in lines(run))  # both ranks' samples checked, every step

    def rows(r):  # the experiences, negative images named by content (each run has its own store)
        return [{**json.loads(x), "negative_image_path": json.loads(x)["negative_image_path"].rsplit("/", 1)[-1]}
                for x in (r / "experiences.jsonl").read_text().splitlines()]  # fmt: skip

    assert rows(run) == rows(two_ranks)
