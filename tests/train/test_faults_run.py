"""A whole online run against a judge and describer that misbehave at the socket level (faults):
the run completes, every failure is counted exactly, and no stage waits past its calls' stated deadline.

The fault of a request is a pure function of its prompt, the same for every attempt, so from the server's log
the expected failures follow: a retried kind (HTTP 500, 429, hang, trickle, reset) costs 1 + max_retries
requests per failed call, the others one request.
"""

import hashlib
import json

import pytest
import torch
from faults import Fault, FaultServer
from PIL import Image

from ovip.config import Config, RolloutConfig, TrainConfig
from ovip.feedback.openai_describer import OpenAIDescriber
from ovip.feedback.openai_judge import OpenAIJudge
from ovip.negatives.crop import CropSynthesizer
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.train.loop import OnlineTrainer
from ovip.train.preflight import PROBE_QUERY

pytestmark = pytest.mark.slow  # minutes of real subprocess runs; CI runs them (only -m gpu is opt-in)

LIMITS = {"timeout": 0.4, "max_retries": 1, "retry_wait": 0.05, "max_wait": 0.2}
WORST = 2 * 0.4 + 0.2  # CallLimits.worst_case of LIMITS
JUDGE = [
    *(Fault("ok", text=f"Score: {x}") for x in (9, 8, 7, 2, 1, 0)),
    Fault("status", status=500),
    Fault("status", status=429, retry_after="0.1"),
    Fault("hang"),
    Fault("trickle", interval=0.05),
    Fault("reset"),
    Fault("malformed"),
    Fault("ok", text="Score: 5/5"),
]
DESCRIBE = [
    Fault("ok", text="a red cube ."),
    Fault("ok", text="a blue ball ."),
    Fault("ok", text="a cube ."),
    Fault("hang"),
    Fault("ok", text="Score: -1"),
]
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
        images.append(
            Example(
                id=f"ex{i}", query="describe this image .", reference="a red cube .", image_path=str(path)
            )
        )
    model, processor = tiny_llava()
    torch.manual_seed(0)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    cfg = Config(
        rollout=RolloutConfig(k=6, max_new_tokens=6, prompts_per_batch=3),
        train=TrainConfig(lr=1e-2, batch_size=2, micro_batch_size=2, save_every=0),
    )
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
    assert summary["prompts"] == 6 and summary["judge/failure_rate"] == c.judge_failures / judge.calls
    assert summary["step"] >= 1  # and the run trained on what survived
    # no stage waited past its calls' worst case: one judge group (concurrent) and one call per description
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scoring = sum(m["time/scoring"] for m in lines) + trainer.timers.seconds.get("scoring", 0.0)
    description = sum(m["time/description"] for m in lines) + trainer.timers.seconds.get("description", 0.0)
    assert scoring <= c.prompts * (WORST + 0.4)
    assert description <= describer.calls * (WORST + 0.4)


class Faulty:
    """ASGI wrapper over a test service: a request whose body hashes to 0 mod 10 is answered HTTP 500, to 1 mod
    10 not within the client's deadline; the others reach the service. The fault is a function of the body,
    so every attempt of a call meets the same one. `log` keeps (fault, path, status) per request."""

    def __init__(self, app, hang: float = 1.0):
        self.app, self.hang, self.log = app, hang, []

    async def __call__(self, scope, receive, send):
        import asyncio

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        fault = ("500", "hang", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok")[
            int(hashlib.sha256(body).hexdigest(), 16) % 10
        ]
        if PROBE_QUERY.encode() in body or b'"a red ball ."' in body:
            fault = "ok"  # the preflight's probes pass: this test is about the run
        entry = [fault, scope["path"], None]
        self.log.append(entry)
        if fault == "500":
            entry[2] = 500
            await send(
                {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]}
            )
            return await send({"type": "http.response.body", "body": b"injected"})
        if fault == "hang":
            await asyncio.sleep(self.hang)

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        async def status(message):
            if message["type"] == "http.response.start":
                entry[2] = message["status"]
            await send(message)

        await self.app(scope, replay, status)


def test_20_percent_500s_and_timeouts_over_judge_describer_and_images(tiny_world, monkeypatch, one_thread):
    """A tiny-world run whose three services fail 20% of their requests (half HTTP 500, half past the 0.3 s
    deadline; a failed call is 2 failed requests, max_retries 1) completes; every failed call is counted
    where it belongs, and every score in the buffer is the world judge's own (none invented for a failure)."""
    import yaml
    from conftest import http_services

    from ovip.config import from_dict
    from ovip.config.world import WorldConfig
    from ovip.feedback.serve import world_reply
    from ovip.negatives.serve import WorldBackend, make_images_app
    from ovip.services.chat_server import make_app, serve_in_thread
    from ovip.train.run import make_trainer
    from ovip.world.judge import WorldJudge

    root, recipe, environ = tiny_world
    monkeypatch.setenv("OVIP_CACHE", environ["OVIP_CACHE"])
    chat = Faulty(make_app(world_reply(), model="world"))
    images = Faulty(make_images_app(WorldBackend(WorldConfig()), "world"))
    with serve_in_thread(chat) as chat_url, serve_in_thread(images) as images_url:
        cfg = http_services(
            yaml.safe_load(recipe.read_text()),
            chat_url,
            images_url,
            timeout=0.3,
            max_retries=1,
            max_concurrency=8,
        )
        cfg["train"].update(output_dir=str(root / "faulty"), pipeline="overlapped")
        trainer = make_trainer(from_dict(cfg))
        chat.log.clear(), images.log.clear()  # the preflight's requests
        summary = trainer.run()
    injected = {f for f, _, _ in chat.log + images.log}
    assert {"500", "hang"} <= injected and summary["prompts"] == 12 and summary["step"] >= 1
    c, judge = trainer.counters, trainer.judge

    def failed(log, path, statuses=()):
        """Failed calls on `path`: 2 requests per call met an injected fault; other failures (the world
        describer's 422 for an answer naming no object) are not retried, 1 request per call."""
        faulty = sum(f != "ok" for f, p, _ in log if p == path)
        assert faulty % 2 == 0
        return faulty // 2 + sum(f == "ok" and s in statuses for f, p, s in log if p == path)

    assert judge.failures + trainer.describer.failures == failed(chat.log, "/v1/chat/completions", (422,))
    assert c.judge_failures == judge.failures > 0 and c.judged == judge.calls + judge.cache_hits
    assert c.description_failures == trainer.describer.failures > 0
    assert (
        c.negative_failures
        == trainer.synthesizer.failures
        == failed(images.log, "/v1/images/generations", (422,))
        > 0
    )
    assert summary["judge/failures_total"] == c.judge_failures
    assert summary["negatives/failures_total"] == c.negative_failures
    world = WorldJudge()
    exps = [json.loads(x) for x in (root / "faulty" / "experiences.jsonl").read_text().splitlines()]
    examples = {e.id: e for e in trainer.examples}
    for e in exps:
        reference = examples[e["example_id"]].reference
        assert e["rejected_score"] == world.score(e["query"], e["rejected"], reference)
        assert e["chosen_score"] == (
            10.0 if e["fallback"] else world.score(e["query"], e["chosen"], reference)
        )
