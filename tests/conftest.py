import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; tests that need a file skip with the reason when it is absent."""
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "shared" / "data"


# A shrunk built-in world (a few hundred scenes, a 2-layer model pretrained for a few dozen steps): the default
# code path at a size that keeps end-to-end tests under a minute.
TINY_WORLD = {
    "model": {"path": "world", "lora_r": 4, "lora_alpha": 8},
    "rollout": {"k": 4, "max_new_tokens": 12, "prompts_per_batch": 2},
    "train": {"output_dir": "runs/quickstart", "lr": 5.0e-3, "batch_size": 2, "micro_batch_size": 2, "max_examples": 12,
              "save_every": 1, "seed": 3},
    "eval": {"max_new_tokens": 12, "batch_size": 16},
    "world": {
        "pretrain_size": 200, "preference_size": 24,
        "eval_sizes": {"amber_gen": 8, "amber_dis": 8, "objecthal": 8, "mmhal": 8, "llava_bench": 8, "general": 8},
        "model": {"vision_hidden": 32, "text_hidden": 32, "text_layers": 2, "heads": 2},
        "pretrain": {"steps": 20, "batch_size": 8, "warmup_steps": 2},
    },
}


@pytest.fixture(scope="session")
def tiny_world_recipe():
    import copy

    return copy.deepcopy(TINY_WORLD)
