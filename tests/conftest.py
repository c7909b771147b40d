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
    "train": {
        "output_dir": "runs/quickstart",
        "lr": 5.0e-3,
        "batch_size": 2,
        "micro_batch_size": 2,
        "max_examples": 12,
        "save_every": 1,
        "seed": 3,
    },
    "eval": {"max_new_tokens": 12, "batch_size": 16},
    "world": {
        "pretrain_size": 200,
        "preference_size": 24,
        "eval_sizes": {
            "amber_gen": 8,
            "amber_dis": 8,
            "objecthal": 8,
            "mmhal": 8,
            "llava_bench": 8,
            "general": 8,
        },
        "model": {"vision_hidden": 32, "text_hidden": 32, "text_layers": 2, "heads": 2},
        "pretrain": {"steps": 20, "batch_size": 8, "warmup_steps": 2, "vision_steps": 40},
    },
}


@pytest.fixture(scope="session")
def tiny_world_recipe():
    import copy

    return copy.deepcopy(TINY_WORLD)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory, tiny_world_recipe):
    """(root folder, recipe file, environment) for `ovip` subprocesses on the tiny world; every test that uses
    it shares one world cache, so the world is built and its base model pretrained once per session."""
    import yaml

    root = tmp_path_factory.mktemp("tiny-world")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_world_recipe))
    environ = {**os.environ, "OVIP_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    environ.pop("OVIP_TEST_KILL_AT", None)
    return root, recipe, environ


def run_ovip(args, environ, **kw):
    """`python -m ovip.cli ARGS` in a subprocess; the CompletedProcess."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "ovip.cli", *args], env=environ, capture_output=True, text=True, **kw
    )


@pytest.fixture(scope="session")
def uninterrupted_run(tiny_world):
    """A tiny-world run trained start to finish without interruption (6 optimizer steps, a checkpoint after
    each): the reference that killed and resumed runs must reproduce."""
    root, recipe, environ = tiny_world
    run = root / "uninterrupted"
    out = run_ovip(["train", "--config", str(recipe), "--train.output_dir", str(run)], environ, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """A tiny text-to-image pipeline of a real diffusers architecture, built in-process (no download).

    SD-1.x layout, 2 UNet blocks of 16/32 channels, a 1-layer CLIP text encoder over a 54-token vocabulary."""
    import json
    import warnings

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("tokenizer")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        )
    )  # fmt: skip
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, layers_per_block=1,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=DDIMScheduler(clip_sample=False),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip


class Jitter:
    """ASGI wrapper for the test services: each request first waits a pseudo-random 0-`spread` seconds (so
    replies complete out of order), and `peak` keeps the most requests that were in flight at once."""

    def __init__(self, app, spread: float = 0.03, seed: int = 0):
        import random
        import threading

        self.app, self.spread, self.rng = app, spread, random.Random(seed)
        self.lock, self.now, self.peak, self.requests = threading.Lock(), 0, 0, 0

    async def __call__(self, scope, receive, send):
        import asyncio

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        with self.lock:
            self.now, self.requests = self.now + 1, self.requests + 1
            self.peak = max(self.peak, self.now)
            delay = self.rng.random() * self.spread
        try:
            await asyncio.sleep(delay)
            await self.app(scope, receive, send)
        finally:
            with self.lock:
                self.now -= 1

    def reset(self):
        with self.lock:
            self.peak, self.requests = 0, 0


@pytest.fixture(scope="session")
def world_services():
    """The world's judge + describer (chat completions) and renderer (Images API) served on local sockets, as
    `ovip serve judge` and `ovip serve images --model world` serve them, each reply delayed at random:
    (chat URL, images URL, chat Jitter, images Jitter)."""
    from ovip.config.world import WorldConfig
    from ovip.feedback.serve import world_reply
    from ovip.negatives.serve import WorldBackend, make_images_app
    from ovip.services.chat_server import make_app, serve_in_thread

    chat = Jitter(make_app(world_reply(), model="world", strict_model=True), seed=1)
    images = Jitter(make_images_app(WorldBackend(WorldConfig()), "world"), seed=2)
    with serve_in_thread(chat) as chat_url, serve_in_thread(images) as images_url:
        yield chat_url, images_url, chat, images


def http_services(recipe: dict, chat_url: str, images_url: str, **limits) -> dict:
    """`recipe` with the judge, describer and negative images served over HTTP (the world's, by default)."""
    import copy

    out = copy.deepcopy(recipe)
    chat = {
        "kind": "openai",
        "base_url": chat_url,
        "model": "world",
        "timeout": 5.0,
        "max_retries": 0,
        **limits,
    }
    out["judge"], out["describer"] = dict(chat), dict(chat)
    out["negatives"] = {
        "kind": "http",
        "base_url": images_url,
        "model": "world",
        "height": 64,
        "width": 64,
        **limits,
    }
    return out


@pytest.fixture
def one_thread():
    """torch on one thread for an in-process run: on a shared 2-core machine two intra-op threads make the tiny
    model's generate tens of times slower (the subprocess runs get OMP_NUM_THREADS=1 the same way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


WORLD_ITEM_FIELDS = {
    "id", "task", "query", "answer", "reference", "cut", "parses", "repeated_mentions", "contradiction",
}  # fmt: skip
WORLD_SPLIT_FIELDS = {
    "amber_gen": {
        "mentions",
        "hallucinated",
        "prior_kinds",
        "covered",
        "truth",
        "partners_baited",
        "partners_named",
    },
    "amber_dis": {"prediction", "label", "correct", "invalid", "bait"},
    "objecthal": {"objects", "hallucinated", "truth"},
    "mmhal": {"judge_score", "rating", "judge_failed", "hallucinating"},
    "llava_bench": {"judge_score", "reference_score", "judge_failed"},
    "general": {"correct"},
}


def check_world_items(metrics: dict, items: dict) -> None:
    """The per-item records of `ovip.world.bench.evaluate_world_items` give back each split's summary: CHAIR is
    the summed hallucinated mentions over the summed mentions (x 100), the parse rate the share of items that
    parse, and so on for every split."""

    def pct(a, b):
        return 100.0 * a / b if b else 0.0

    assert set(items) == set(WORLD_SPLIT_FIELDS) & set(metrics)
    for split, records in items.items():
        m = metrics[split]
        assert len(records) == m["n"] > 0
        assert all(WORLD_ITEM_FIELDS | WORLD_SPLIT_FIELDS[split] <= set(r) for r in records), split
        assert pct(sum(r["parses"] for r in records), len(records)) == pytest.approx(
            m["fluency"]["parse_rate"]
        )
        if split == "amber_gen":
            mentions = sum(len(r["mentions"]) for r in records)
            assert pct(sum(len(r["hallucinated"]) for r in records), mentions) == pytest.approx(m["chair"])
            truth = sum(len(r["truth"]) for r in records)
            assert pct(sum(len(r["covered"]) for r in records), truth) == pytest.approx(m["cover"])
            assert all(len(r["prior_kinds"]) == len(r["hallucinated"]) for r in records)
            baited = sum(len(r["partners_baited"]) for r in records)
            assert pct(sum(len(r["partners_named"]) for r in records), baited) == pytest.approx(
                m["partner_rate"]
            )
        elif split == "objecthal":
            named = [r for r in records if r["objects"]]
            assert pct(sum(bool(r["hallucinated"]) for r in named), len(named)) == pytest.approx(m["chair_r"])
            objects = sum(len(r["objects"]) for r in records)
            assert pct(sum(len(r["hallucinated"]) for r in records), objects) == pytest.approx(m["chair_i"])
        elif split == "amber_dis":
            assert pct(sum(r["correct"] for r in records), len(records)) == pytest.approx(m["accuracy"])
            assert sum(r["invalid"] for r in records) == m["invalid"]
            assert sum(r["bait"] for r in records) == m["n_bait"]
        elif split == "mmhal":
            rated = [r for r in records if not r["judge_failed"]]
            assert sum(r["judge_failed"] for r in records) == m["judge_failures"]
            mean = sum(r["rating"] for r in rated) / max(1, len(rated))
            assert mean == pytest.approx(m["score"], abs=5e-4)
            hallucinating = pct(sum(r["hallucinating"] for r in rated), len(rated))
            assert hallucinating == pytest.approx(m["hallucination_rate"], abs=5e-3)
        elif split == "llava_bench":
            judged = [r for r in records if not r["judge_failed"]]
            assert sum(r["judge_failed"] for r in records) == m["judge_failures"]
            relative = pct(sum(r["judge_score"] for r in judged), sum(r["reference_score"] for r in judged))
            assert relative == pytest.approx(m["score"], abs=0.05)
        elif split == "general":
            assert pct(sum(r["correct"] for r in records), len(records)) == pytest.approx(m["accuracy"])
