"""The GPU paths of data parallelism (opt-in: pytest -m gpu). None of these has been run by this project yet:
until they pass on a machine with 2+ GPUs, DDP over NCCL, DeepSpeed ZeRO-2/3 and FSDP2 are unverified (the CPU
tests of `test_distributed.py` cover the same loop with DDP over gloo).

Each launches a 2-rank tiny-world run on CUDA in bf16 with one of `configs/accelerate/*.yaml`, and checks that it
ends with an adapter, one metrics file and both ranks' checkpoint parts; the DDP one also resumes a run whose
rank 1 was killed after its first checkpoint.
"""

import importlib.util
import json
import os

import pytest
import torch
from test_distributed import accelerate_with, adapter

from ovip.train import checkpoint

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPUS < 1, reason="needs CUDA")]
two_gpus = pytest.mark.skipif(GPUS < 2, reason=f"needs 2 CUDA devices, found {GPUS}")
CUDA = ["--model.device", "cuda", "--model.dtype", "bfloat16"]


def launch(config: str, run, tiny_world, *extra, env=None):
    root, recipe, environ = tiny_world
    return accelerate_with(
        config,
        ["train", "--config", str(recipe), "--train.output_dir", str(run), *CUDA, *extra],
        {**environ, **(env or {})},
        timeout=1200,
    )


def finished(run) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["step"] >= 1
    assert (checkpoint.latest(run) / "rank-1" / "state.json").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == summary["step"]
    return summary


@two_gpus
def test_ddp_nccl_run_and_resume_after_a_killed_rank(tiny_world):
    root = tiny_world[0]
    out = launch(
        "ddp.yaml",
        root / "gpu-ddp",
        tiny_world,
        "--model.gradient_checkpointing",
        "true",
        "--model.attn_implementation",
        "sdpa",
    )
    assert out.returncode == 0, out.stderr[-4000:]
    finished(root / "gpu-ddp")
    killed = root / "gpu-ddp-killed"
    out = launch(
        "ddp.yaml",
        killed,
        tiny_world,
        "--model.gradient_checkpointing",
        "true",
        "--model.attn_implementation",
        "sdpa",
        env={"OVIP_TEST_KILL_AT": "saved@1", "OVIP_TEST_KILL_RANK": "1"},
    )
    assert out.returncode != 0
    out = accelerate_with("ddp.yaml", ["train", "--resume", str(killed)], tiny_world[2], timeout=1200)
    assert out.returncode == 0, out.stderr[-4000:]
    a, b = adapter(root / "gpu-ddp"), adapter(killed)
    for k in a:  # NCCL reductions are deterministic for a fixed world size and buffer layout
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@two_gpus
@pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed (pip install deepspeed)"
)
@pytest.mark.parametrize("config", ["zero2.yaml", "zero3.yaml"])
def test_deepspeed_zero_run(tiny_world, config):
    run = tiny_world[0] / f"gpu-{config[:-5]}"
    out = launch(config, run, tiny_world)
    assert out.returncode == 0, out.stderr[-4000:]
    finished(run)
    assert any(float(v.abs().sum()) > 0 for k, v in adapter(run).items() if "lora_B" in k)


@two_gpus
def test_fsdp2_run(tiny_world):
    run = tiny_world[0] / "gpu-fsdp"
    out = launch("fsdp.yaml", run, tiny_world)
    assert out.returncode == 0, out.stderr[-4000:]
    finished(run)
    assert any(float(v.abs().sum()) > 0 for k, v in adapter(run).items() if "lora_B" in k)


def test_one_gpu_is_the_single_process_path(tiny_world):
    """One process on CUDA: no launcher, world 1 (the in-process loop of test_loop_cuda.py, through the CLI)."""
    from conftest import run_ovip

    root, recipe, environ = tiny_world
    run = root / "gpu-one"
    out = run_ovip(
        ["train", "--config", str(recipe), "--train.output_dir", str(run), *CUDA], environ, timeout=1200
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "ranks" not in json.loads((run / "summary.json").read_text())
    assert os.path.isdir(checkpoint.latest(run) / "adapter")
