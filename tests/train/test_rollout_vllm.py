"""The online loop sampled by vLLM (opt-in: pytest -m gpu; skipped without CUDA or without vllm installed).

A tiny random LLaVA (head size 64, which vLLM's attention kernels take) is saved to a folder and served with
`vllm serve FOLDER --enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`; 4+ optimizer steps of the loop
are sampled by it, each step's adapter pushed with vLLM's runtime LoRA endpoint, and the log-prob gap between
vLLM's log-probs of its samples and the trainer's own stays within the bfloat16 default. Not run here (no GPU).
"""

import importlib.util
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
import torch
from PIL import Image

from ovip.config import Config, ModelConfig, RolloutConfig, TrainConfig
from ovip.config.sections import LOGPROB_GAP
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.train.distributed import free_port
from ovip.train.loop import OnlineTrainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm"),
]


def test_four_steps_sampled_by_vllm_with_runtime_lora_updates(tmp_path):
    from ovip.config.world import WorldConfig
    from ovip.world.judge import WorldDescriber, WorldJudge, WorldRenderer

    model, processor = tiny_llava(hidden=128)
    folder = tmp_path / "tiny-llava"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    port = free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--served-model-name",
        "tiny", "--enable-lora", "--max-lora-rank", "8", "--max-loras", "2", "--dtype", "bfloat16",
        "--max-model-len", "512", "--gpu-memory-utilization", "0.3", "--enforce-eager", "--port", str(port),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    with open(tmp_path / "vllm.txt", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "vllm.txt").read_text()[
                -3000:
            ]
            time.sleep(1)
        model.to("cuda", torch.bfloat16)
        policy = Policy(model, processor, lora=LoraSpec(r=8, alpha=16, dropout=0.0))
        examples = []
        for i in range(8):
            path = tmp_path / f"{i}.png"
            Image.new("RGB", (32, 32), (30 * i, 100, 150)).save(path)
            examples.append(
                Example(str(i), "describe this image .", "a red cube and a blue ball .", image_path=str(path))
            )
        cfg = Config(
            model=ModelConfig(device="cuda", dtype="bfloat16"),
            rollout=RolloutConfig(
                k=4, max_new_tokens=8, prompts_per_batch=2, engine="server", base_url=f"http://127.0.0.1:{port}/v1",
                model="tiny",
            ),
            train=TrainConfig(lr=1e-2, batch_size=2, micro_batch_size=2, save_every=0),
        )  # fmt: skip
        world = WorldConfig()
        trainer = OnlineTrainer(
            cfg, policy, examples, WorldJudge(), WorldDescriber(), WorldRenderer(world), tmp_path / "run"
        )
        summary = trainer.run()
    finally:
        server.terminate()
        server.wait(timeout=60)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    gaps = [m["rollout/logprob_gap"] for m in lines if m["rollout/logprob_gap"] is not None]
    print("rollout/logprob_gap per step:", gaps)
    assert summary["step"] >= 4 and summary["rollout/failures_total"] == 0
    assert gaps and max(gaps) < LOGPROB_GAP["bfloat16"]
