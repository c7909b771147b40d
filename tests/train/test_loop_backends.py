"""Same loop, same code: tiny random LLaVA and Qwen2-VL run online steps against a real local judge server,
with negative images drawn by a tiny `diffusers` pipeline."""

import hashlib
import json

import pytest
import torch
from PIL import Image
from tiny_qwen import tiny_qwen2_vl

from ovip.config import Config, LossConfig, RolloutConfig, TrainConfig
from ovip.feedback.openai_describer import OpenAIDescriber
from ovip.feedback.openai_judge import OpenAIJudge
from ovip.negatives.crop import CropSynthesizer
from ovip.negatives.diffusion import DiffusersSynthesizer
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.services.chat_server import ReplyError, make_app, serve_in_thread
from ovip.train.counters import NoUpdates
from ovip.train.loop import OnlineTrainer


def reply(messages, params):
    """A judge/describer that speaks chat-completions: scores spread over 0-10 by a hash of the prompt;
    every 7th request fails with HTTP 500 and every 11th answers garbage, so failures must be counted."""
    prompt = messages[-1]["content"]
    h = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    if h % 7 == 0:
        raise ReplyError(500, "overloaded")
    if "Score" in prompt or "score" in prompt:
        return "I cannot judge this." if h % 11 == 0 else f"Score: {h % 11}\n"
    return "a red cube and a blue ball on the left ."


@pytest.fixture(scope="module")
def server():
    with serve_in_thread(make_app(reply)) as url:
        yield url


def examples(tmp_path, n=6):
    out = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (32, 32), (40 * i % 255, 100, 200 - 20 * i)).save(path)
        out.append(
            Example(
                id=f"ex{i}", query="describe this image .", reference="a red cube .", image_path=str(path)
            )
        )
    return out


@pytest.mark.parametrize("build", [tiny_llava, tiny_qwen2_vl], ids=["llava", "qwen2_vl"])
def test_online_steps_with_judge_server(build, server, tiny_pipeline, tmp_path):
    model, processor = build()
    torch.manual_seed(0)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    cfg = Config(
        rollout=RolloutConfig(k=6, max_new_tokens=6, prompts_per_batch=3),
        train=TrainConfig(lr=1e-2, batch_size=2, micro_batch_size=2, save_every=1, report_to=["tensorboard"]),
        loss=LossConfig(),
    )
    judge = OpenAIJudge(base_url=server, model="judge", timeout=5, max_retries=0)
    describer = OpenAIDescriber(base_url=server, model="describer", timeout=5, max_retries=0)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    diffusion = DiffusersSynthesizer(
        height=32, width=32, num_inference_steps=2, device="cpu", pipeline=tiny_pipeline
    )
    trainer = OnlineTrainer(cfg, policy, examples(tmp_path), judge, describer, diffusion, tmp_path / "run")
    summary = trainer.run()
    assert summary["step"] >= 1
    assert diffusion.calls > 0 and summary["negatives/failures"] == diffusion.failures
    assert summary["judge/failure_rate"] > 0  # HTTP 500s and garbage were counted, the run went on
    changed = [n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all("lora_" in n for n in changed)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/text", "loss/image", "rewards/margins", "time/sampling", "time/negative_image"} <= set(
        lines[0]
    )
    assert (tmp_path / "run" / "checkpoints" / "latest").exists()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    exps = [json.loads(x) for x in (tmp_path / "run" / "experiences.jsonl").read_text().splitlines()]
    # beta1 == beta2 (the default): Eq. 5 is the base form and the image-free condition is not scored
    assert exps and all(
        set(e["reference_logps"]) == {"chosen|image", "rejected|image", "chosen|negative"} for e in exps
    )


class BrokenDescriber:
    """A describer with a bug: it raises instead of returning a failed Description."""

    def describe(self, query, chosen, rejected):
        raise KeyError("heart")


def test_a_raising_service_is_a_counted_failure_not_a_crash(server, tmp_path):
    model, processor = tiny_llava()
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    cfg = Config(
        rollout=RolloutConfig(k=6, max_new_tokens=6, prompts_per_batch=3),
        train=TrainConfig(batch_size=2, micro_batch_size=2),
    )
    judge = OpenAIJudge(base_url=server, model="judge", timeout=5, max_retries=0)
    trainer = OnlineTrainer(
        cfg, policy, examples(tmp_path), judge, BrokenDescriber(), CropSynthesizer(), tmp_path / "run"
    )
    with pytest.raises(NoUpdates, match="no optimizer step: 6 prompts gave 0 experiences") as stopped:
        trainer.run()  # the run went through every prompt, then says loudly that it trained nothing
    assert "describer: KeyError: 'heart'" in str(stopped.value)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["negatives/description_failures"] > 0
    assert summary["experiences/total"] == 0 and summary["step"] == 0
    assert "describer failed: KeyError: 'heart'" in (tmp_path / "run" / "train.log").read_text()
