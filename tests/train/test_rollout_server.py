"""`rollout.engine: server`: the tiny world's run sampled by `ovip serve policy` processes through real sockets.

- a server run is the local run: the same experiences, metrics and adapter bit for bit (the adapter pushed after
  every optimizer step, pipeline concurrent), with `rollout/logprob_gap` at float noise in every line;
- killed with SIGKILL mid-checkpoint, it resumes (the checkpoint's adapter pushed again) into the same run;
- its policy server killed mid-run, it stops at the error budget with a checkpoint (exit 1), and `--resume`
  against a new server finishes it, again into the same run; with two replicas, one killed mid-run, the other
  takes its requests and the run does not notice;
- a server that answers adapter loads but keeps sampling the base model stops the run within one window, the
  gap in metrics.jsonl; a reply that names another adapter than asked stops it at once; a prompt whose request
  fails is a counted failure without experiences; a replica that refuses a load stops the run with its error.
"""

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
import yaml
from conftest import run_ovip
from processes import ovip_serve
from safetensors.torch import load_file

from ovip.config import from_dict
from ovip.policy.model import Policy
from ovip.policy.rollout import prompt_seed
from ovip.services.chat_server import serve_in_thread
from ovip.services.policy import PolicyBackend, make_policy_app
from ovip.train import checkpoint
from ovip.train.counters import ServiceFailure
from ovip.train.run import train
from ovip.world.build import ensure_base_model

pytestmark = pytest.mark.slow  # minutes of real subprocess runs; CI runs them (only -m gpu is opt-in)


def experiences(run) -> list[dict]:
    rows = [json.loads(line) for line in (run / "experiences.jsonl").read_text().splitlines()]
    for row in rows:  # the image stores are per run folder
        row["image_path"] = row["image_path"].rsplit("/", 1)[-1]
        row["negative_image_path"] = row["negative_image_path"].rsplit("/", 1)[-1]
    return rows


def metrics(run, drop=("time/", "rollout/logprob_gap")) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.startswith(drop)} for m in lines]


def assert_same_run(run, reference):
    """Same experiences, metrics (the log-prob gap aside: float noise of the server's batches) and adapter."""
    assert experiences(run) == experiences(reference)
    assert metrics(run) == metrics(reference)
    a = load_file(str(checkpoint.latest(reference) / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(checkpoint.latest(run) / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def server_args(url: str, *more: str) -> list[str]:
    return ["--rollout.engine", "server", "--rollout.base_url", url, "--rollout.max_retries", "1", *more]


def serve(tiny_world, tmp_path, name="policy"):
    """`ovip serve policy --model world` on the tiny recipe, adapters readable from the tests' runs."""
    root, recipe, environ = tiny_world
    args = ("--config", str(recipe), "--adapter-root", str(root))
    return ovip_serve("policy", *args, stderr=tmp_path / f"{name}.txt", env=environ)


@pytest.fixture(scope="module")
def policy_server(tiny_world, uninterrupted_run, tmp_path_factory):
    with serve(tiny_world, tmp_path_factory.mktemp("policy")) as (url, _):
        yield url


def test_a_server_run_is_the_local_run(tiny_world, uninterrupted_run, policy_server):
    root, recipe, environ = tiny_world
    run = root / "server-run"
    out = run_ovip(
        ["train", "--config", str(recipe), "--train.output_dir", str(run), *server_args(policy_server)],
        environ,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_run(run, uninterrupted_run)
    gaps = [json.loads(x)["rollout/logprob_gap"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(gaps) >= 5 and all(g is not None and g < 1e-5 for g in gaps), gaps  # checked every step
    # each step's adapter was pushed; the ones no batch uses any more were unloaded and their folders deleted
    assert [p.name for p in (run / "rollout").iterdir()] == [f"step-{len(gaps)}"]


def test_a_killed_server_run_resumes_into_the_same_run(tiny_world, uninterrupted_run, policy_server):
    """kill -9 after step 3's checkpoint is renamed, before the pointer moves (and before its push): the
    resume unloads what the killed run left on the server and pushes the checkpoint's adapter again."""
    root, recipe, environ = tiny_world
    run = root / "server-crash"
    start = ["train", "--config", str(recipe), "--train.output_dir", str(run), *server_args(policy_server)]
    out = run_ovip(start, {**environ, "OVIP_TEST_KILL_AT": "after_rename@3"}, timeout=600)
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    out = run_ovip(["train", "--resume", str(run)], environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_run(run, uninterrupted_run)


def wait_for_lines(run, n: int, proc, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < n:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.02)


def test_a_dead_policy_server_stops_the_run_and_resume_finishes_it(tiny_world, uninterrupted_run, tmp_path):
    """The server is killed after the first step: the next batch's prompts fail (2 of the last 2 rollout
    calls), the run stops with a checkpoint that samples that batch again; `--resume` against a new server
    ends as the uninterrupted run."""
    root, recipe, environ = tiny_world
    run = root / "server-dies"
    budget = ["--train.failure_window", "2", "--train.max_failure_rate", "0.5"]
    with serve(tiny_world, tmp_path) as (url, server):
        cmd = ["train", "--config", str(recipe), "--train.output_dir", str(run), *server_args(url), *budget]
        proc = subprocess.Popen(
            [sys.executable, "-m", "ovip.cli", *cmd], env=environ, stderr=subprocess.PIPE, text=True
        )
        wait_for_lines(run, 1, proc)
        server.kill()
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("ovip: training stopped: rollout: 2 of its last 2 calls failed"), last
    assert "ovip train --resume" in last
    with serve(tiny_world, tmp_path, "policy-2") as (url, _):
        out = run_ovip(["train", "--resume", str(run), "--rollout.base_url", url], environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_run(run, uninterrupted_run)


def test_a_killed_replica_moves_its_requests_to_the_other(tiny_world, uninterrupted_run, tmp_path):
    root, recipe, environ = tiny_world
    run = root / "server-replicas"
    with serve(tiny_world, tmp_path, "a") as (a, first), serve(tiny_world, tmp_path, "b") as (b, _):
        cmd = ["train", "--config", str(recipe), "--train.output_dir", str(run), *server_args(f"{a},{b}")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "ovip.cli", *cmd], env=environ, stderr=subprocess.PIPE, text=True
        )
        wait_for_lines(run, 1, proc)
        first.kill()
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert f"rollout: sampling on {b} (1 of 2 replicas hold" in err
    assert json.loads((run / "summary.json").read_text())["rollout/failures_total"] == 0
    assert_same_run(run, uninterrupted_run)


class BaseOnly(PolicyBackend):
    """A policy server that answers every adapter load with success and keeps sampling the base model,
    answering under the requested adapter's name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ignored = set()

    def load_adapter(self, name, path, replace=False):
        self.adapter_folder(path)
        self.ignored.add(name)

    def unload_adapter(self, name):
        self.ignored.discard(name)

    def check_model(self, name):
        if name not in self.ignored:
            super().check_model(name)

    def generate(self, jobs):
        return super().generate([replace(job, adapter=self.name) for job in jobs])


class FailingPrompt:
    """ASGI wrapper: the chat request of the prompt seeded `seed` gets HTTP 500; the rest reach the server."""

    def __init__(self, app, seed: int):
        self.app, self.seed, self.failed = app, seed, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        if scope["path"].endswith("/chat/completions") and json.loads(body).get("seed") == self.seed:
            self.failed += 1
            await send({"type": "http.response.start", "status": 500, "headers": []})
            return await send({"type": "http.response.body", "body": b"injected"})

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class AnswersAsTheBaseModel:
    """ASGI wrapper: every chat reply names the base model, "world", whatever the request asked for."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            return await self.app(scope, receive, send)
        head, parts = {}, []

        async def rename(message):
            if message["type"] == "http.response.start":
                return head.update(message)
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                raw = json.dumps({**json.loads(b"".join(parts)), "model": "world"}).encode()
                headers = [(k, v) for k, v in head["headers"] if k.lower() != b"content-length"]
                await send({**head, "headers": [*headers, (b"content-length", str(len(raw)).encode())]})
                await send({"type": "http.response.body", "body": raw})

        await self.app(scope, receive, rename)


@pytest.fixture
def in_process(tiny_world, uninterrupted_run, monkeypatch, one_thread):
    """(recipe dict, a PolicyBackend builder) for runs in this process against in-process servers."""
    root, recipe, environ = tiny_world
    monkeypatch.setenv("OVIP_CACHE", environ["OVIP_CACHE"])
    data = yaml.safe_load(recipe.read_text())
    base = ensure_base_model(environ["OVIP_CACHE"], from_dict(data).world, progress=False)

    def backend(kind=PolicyBackend, adapter_root=root):
        policy = Policy.from_pretrained(str(base), finetune="none")
        return kind(policy.model, policy.processor, "world", adapter_root=adapter_root)

    return root, data, backend


def server_recipe(data: dict, url: str, run, **rollout) -> dict:
    out = json.loads(json.dumps(data))
    out["train"]["output_dir"] = str(run)
    out["rollout"].update(engine="server", base_url=url, max_retries=0, **rollout)
    return out


def test_a_server_that_samples_the_base_model_stops_the_run_within_one_window(in_process):
    """The fresh adapter is the base model (LoRA B = 0), so step 1's check passes; step 1 moves the policy, and
    the check of the batch sampled after its push (base model samples under the name ovip-step-1) stops the
    run after the next metrics line, which shows the gap (default limit 1e-3 for float32; measured 1.6e-2)."""
    root, data, backend = in_process
    run = root / "server-stale"
    with serve_in_thread(make_policy_app(backend(BaseOnly))) as url:
        with pytest.raises(ServiceFailure) as stop:
            train(from_dict(server_recipe(data, url, run)))
    message = str(stop.value)
    assert "\n" not in message and message.startswith("rollout/logprob_gap "), message
    assert (
        "> rollout.max_logprob_gap 0.001" in message and "samples the base model or an old adapter" in message
    )
    gaps = [json.loads(x)["rollout/logprob_gap"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(gaps) == 2 and gaps[0] < 1e-5 < 1e-3 < gaps[1], gaps


def test_a_failed_prompt_is_a_counted_failure_without_experiences(in_process):
    """Position 5's request fails (HTTP 500, no retry): one rollout failure, no experience of that prompt, and
    the run goes on."""
    root, data, backend = in_process
    run = root / "server-one-failure"
    app = FailingPrompt(make_policy_app(backend()), prompt_seed(data["train"]["seed"], 5))
    with serve_in_thread(app) as url:
        summary = train(from_dict(server_recipe(data, url, run)))
    assert app.failed == 1 and summary["rollout/failures_total"] == 1 and summary["step"] >= 4
    examples = {e["example_id"] for e in experiences(run)}
    assert "preference-0000005" not in examples and len(examples) == summary["prompts"] - 1
    assert "rollout failed: HTTP 500: injected" in (run / "train.log").read_text()


def test_a_replica_that_refuses_the_adapter_stops_the_run(in_process, tmp_path):
    """A server whose adapter root does not hold the run folder answers the first push with 403."""
    root, data, backend = in_process
    run = root / "server-refused"
    with serve_in_thread(make_policy_app(backend(adapter_root=tmp_path))) as url:
        with pytest.raises(ServiceFailure) as stop:
            train(from_dict(server_recipe(data, url, run)))
    message = str(stop.value)
    assert message.startswith(
        f"rollout: load adapter 'ovip-step-0' from {run}/rollout/step-0 on {url}: HTTP 403"
    )
    assert "outside the adapter root" in message and "under its --adapter-root" in message


def test_a_reply_from_another_adapter_stops_the_run_at_once(in_process):
    """The first batch's replies name the base model, not ovip-step-0: the run stops at that batch, with a
    checkpoint that samples it again, and one line naming both models and the replica."""
    root, data, backend = in_process
    run = root / "server-renamed"
    with serve_in_thread(AnswersAsTheBaseModel(make_policy_app(backend()))) as url:
        with pytest.raises(ServiceFailure) as stop:
            train(from_dict(server_recipe(data, url, run)))
    message = str(stop.value)
    assert "\n" not in message and message.startswith(
        "rollout: the reply came from model 'world', not the requested adapter 'ovip-step-0'"
    ), message
    assert "the policy server did not load the pushed adapter" in message and "stopped at step 0" in message
    saved = json.loads((checkpoint.latest(run) / "state.json").read_text())
    assert saved["cursor"] == 0 and saved["inflight"] == []  # the batch is sampled again on resume
