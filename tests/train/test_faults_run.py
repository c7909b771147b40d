
"""A whole online run against a judge and describer that misbehave at the socket level (ovip.feedback.faults):
the run completes, every failure is counted exactly, and no stage waits past its calls' stated deadline.

The fault of a request is a pure function of its prompt, the same for every attempt, so from the server's log
the expected failures follow: a retried kind (HTTP 500, 429, hang, trickle, reset) costs 1 + max_retries
requests per failed call, the others one request.
"""

import hashlib
import json

import pytest
import torch
from PIL import Image

from ovip.config import Config, RolloutConfig, TrainConfig
from ovip.feedback.faults import Fault, FaultServer
from ovip.feedback.openai_describer import OpenAIDescriber
from ovip.feedback.openai_judge import OpenAIJudge
from ovip.negatives.crop import CropSynthesizer
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.train.loop import OnlineTrainer

pytestmark = pytest.mark.slow  # minutes of real subprocess runs; CI runs them (only -m gpu is opt-in)

LIMITS = {"timeout": 0.4, "max_retries": 1, "retry_wait": 0.05, "max_wait": 0.2}
WORST = 2 * 0.4 + 0.2  # CallLimits.worst_case of LIMITS
JUDGE = [*(Fault("ok", text=f"Score: {x}") for x in (9, 8, 7, 2, 1, 0)),
         Fault("status", status=500), Fault("status", status=429, retry_after="0.1"), Fault("hang"),
         Fault("trickle", interval=0.05), Fault("reset"), Fault("malformed"), Fault("ok", text="Score: 5/5")]
DESCRIBE = [Fault("ok", text="a red cube ."), Fault("ok", text="a blue ball ."), Fault("ok", text="a cube ."),
            Fault("hang"), Fault("ok", text="Score: -1")]
RETRIED = {"status", "hang", "trickle", "reset"}
UNUSABLE = {"Score: 5/5", "Score: -1"}


def script(index, request):
    prompt = request["messages"][0]["content"]
    faults = JUDGE if "# Correct answer" in prompt else DESCRIBE
    return faults[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(faults)]


def failed_calls(log) -> int:
    """Calls that ended failed, from the server's log of (kind, request): every request of a retried kind is
    one of the 1 + max_retries attempts of a failed call (its fault repeats); a malformed body or an unusable
    reply ("Score: 5/5" to the judge, "Score: -1" as a description) fails its call at once."""
    retried = sum(kind in RETRIED for kind, _ in log)
    assert retried % (1 + LIMITS["max_retries"]) == 0
    at_once = sum(kind == "malformed" or script(0, request).text in UNUSABLE for kind, request in log)
    return retried // (1 + LIMITS["max_retries"]) + at_once


def test_a_run_against_faulty_services_completes_with_exact_counts(tmp_path):
    images = []
    for i in range(6):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (32, 32), (40 * i, 100, 200 - 20 * i)).save(path)
        images.append(Example(id=f"ex{i}", query="describe this image .", reference="a red cube .",
                              image_path=str(path)))
    model, processor = tiny_llava()
    torch.manual_seed(0)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    cfg = Config(rollout=RolloutConfig(k=6, max_new_tokens=6, prompts_per_batch=3),
                 train=TrainConfig(lr=1e-2, batch_size=2, micro_batch_size=2, save_every=0))
    with FaultServer(script) as server:
        judge = OpenAIJudge(server.url, "judge", **LIMITS)
        describer = OpenAIDescriber(server.url, "describer", **LIMITS)
        trainer = OnlineTrainer(cfg, policy, images, judge, describer, CropSynthesizer(), tmp_path / "run")
        summary = trainer.run()
        log = list(server.log)
    judge_log = [(k, r) for k, r in log if "# Correct answer" in r["messages"][0]["content"]]
    describe_log = [(k, r) for k, r in log if "# Correct answer" not in r["messages"][0]["content"]]
    kinds = {k for k, _ in log}
    assert {"status", "hang", "trickle", "reset", "malformed"} <= kinds  # the faults were injected ...
    c = trainer.counters
    assert judge.failures == failed_calls(judge_log) > 0  # ... and counted exactly
    assert c.judge_failures == judge.failures and c.judged == judge.calls + judge.cache_hits
    assert describer.failures == failed_calls(describe_log) == c.description_failures
    assert describer.calls == len(describe_log) - sum(k == "hang" for k, _ in describe_log) // 2
    assert summary["prompts"] == 6 and summary["judge/failure_rate"] == c.judge_failures / c.judged
    assert summary["step"] >= 1  # and the run trained on what survived
    # no stage waited past its calls' worst case: one judge group (concurrent) and one call per description
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scoring = sum(m["time/scoring"] for m in lines) + trainer.timers.seconds.get("scoring", 0.0)
    description = sum(m["time/description"] for m in lines) + trainer.timers.seconds.get("description", 0.0)
    assert scoring <= c.prompts * (WORST + 0.4)
    assert description <= describer.calls * (WORST + 0.4)
