"""Failing loudly through the real `ovip train`: a service that cannot be used stops the run before any model
loads, with one line that names the service, its URL and the cause, and a non-zero exit; so does a run that
ends without a single optimizer step, saying why."""

import socket
import time

import pytest
from conftest import run_ovip
from faults import Fault, FaultServer

from ovip.config import load
from ovip.feedback.serve import world_reply
from ovip.services.chat_server import make_app, serve_in_thread
from ovip.services.server import Guard
from ovip.train.preflight import PreflightError, preflight


def dead_port() -> str:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def train(tiny_world, tmp_path, *overrides):
    root, recipe, environ = tiny_world
    args = ["train", "--config", str(recipe), "--train.output_dir", str(tmp_path / "run"), *overrides]
    return run_ovip(args, {**environ, "OPENAI_API_KEY": ""}, timeout=300)


def error_line(out) -> str:
    lines = [x for x in out.stderr.splitlines() if x.startswith("ovip:")]
    assert len(lines) == 1, out.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def judge_server():
    """The world judge served under the name "world", behind a token."""
    app = Guard(make_app(world_reply(), model="world", strict_model=True), api_key="s3cret")
    with serve_in_thread(app) as url:
        yield url


def test_a_dead_port(tiny_world, tmp_path):
    url = dead_port()
    out = train(
        tiny_world, tmp_path, "--judge.kind", "openai", "--judge.base_url", url, "--judge.max_retries", "0"
    )
    assert out.returncode == 2
    line = error_line(out)
    assert line.startswith(f"ovip: preflight failed: judge at {url}: connection refused"), line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_refused_key(tiny_world, tmp_path, judge_server):
    out = train(
        tiny_world,
        tmp_path,
        "--judge.kind",
        "openai",
        "--judge.base_url",
        judge_server,
        "--judge.model",
        "world",
    )
    assert out.returncode == 2
    line = error_line(out)
    assert "describer" not in line and f"judge at {judge_server}: 401 unauthorized" in line, line
    assert "$OPENAI_API_KEY" in line


def test_a_wrong_model_name(tiny_world, tmp_path, judge_server):
    out = run_ovip(
        [
            "train",
            "--config",
            str(tiny_world[1]),
            "--train.output_dir",
            str(tmp_path / "run"),
            "--describer.kind",
            "openai",
            "--describer.base_url",
            judge_server,
            "--describer.model",
            "Qwen/Qwen2.5-7B-Instruct",
        ],
        {**tiny_world[2], "OPENAI_API_KEY": "s3cret"},
        timeout=300,
    )
    assert out.returncode == 2
    line = error_line(out)
    assert f"describer at {judge_server}: 404 not found: model 'Qwen/Qwen2.5-7B-Instruct'" in line, line
    assert "it serves world" in line


def test_a_dead_image_service_and_a_diffusion_model_that_does_not_load(tiny_world, tmp_path):
    url = dead_port()
    out = train(
        tiny_world,
        tmp_path,
        "--negatives.kind",
        "http",
        "--negatives.base_url",
        url,
        "--negatives.max_retries",
        "0",
    )
    assert out.returncode == 2 and f"images at {url}: connection refused" in error_line(out)
    empty = tmp_path / "no-model"
    empty.mkdir()
    out = train(
        tiny_world,
        tmp_path,
        "--negatives.kind",
        "diffusion",
        "--negatives.model",
        str(empty),
        "--negatives.device",
        "cpu",
    )
    assert out.returncode == 2
    assert "negative images (diffusion, " in error_line(out) and "load error" in error_line(out)


def test_a_run_without_an_update_exits_non_zero_and_says_why(tiny_world, tmp_path):
    out = train(tiny_world, tmp_path, "--train.max_examples", "2", "--train.batch_size", "1000")
    assert out.returncode == 1, out.stderr[-3000:]
    line = [x for x in out.stderr.splitlines() if x.startswith("ovip: training stopped:")]
    assert len(line) == 1 and "no optimizer step: 2 prompts gave" in line[0], out.stderr[-3000:]
    assert "fewer than train.batch_size 1000" in line[0] and "train.log" in line[0]


KINDS = {"judge": "openai", "negatives": "http"}


@pytest.mark.parametrize("section, service", [("judge", "judge"), ("negatives", "images")])
@pytest.mark.parametrize("deadline, setting", [(1.0, "train.preflight_timeout"), (0.5, "{section}.timeout")])
def test_a_hung_server_fails_the_preflight_within_its_deadline(section, service, deadline, setting):
    """A server that reads the request and never answers: one attempt, and the one-line error comes when
    `train.preflight_timeout` (or the service's own `timeout` when shorter) has passed, not after the retries
    (3 x 30 s + waits for the default judge, 3 x 120 s + waits for images)."""
    with FaultServer(lambda i, request: Fault("hang")) as hung:
        overrides = [f"--{section}.kind", KINDS[section], f"--{section}.base_url", hung.url]
        overrides += [f"--{section}.model", "world", "--" + setting.format(section=section), str(deadline)]
        start = time.monotonic()
        with pytest.raises(PreflightError) as error:
            preflight(load(None, overrides))
        elapsed = time.monotonic() - start
        assert hung.kinds() == ["hang"]  # one attempt
    assert deadline <= elapsed < deadline + 1.0, elapsed
    line = str(error.value)
    assert line.startswith(
        f"{service} at {hung.url}: no reply: timeout: no complete reply within {deadline:g}s"
    )
    assert "\n" not in line and "train.preflight_timeout" in line


def test_a_policy_server_that_does_not_serve_the_base_model(tiny_world, tmp_path):
    """rollout.engine server: every replica must answer GET /models and list the policy's base model; the
    first that does not stops the run, naming it and what it serves (or why it did not answer)."""
    from ovip.services.policy import make_policy_app

    class Listing:  # the part of a policy backend that /v1/models reads
        def models(self):
            return [{"id": "llava-hf/llava-1.5-7b-hf", "object": "model"}]

    with serve_in_thread(make_policy_app(Listing())) as url:
        other = load(None, ["--rollout.engine", "server", "--rollout.base_url", url])
        with pytest.raises(PreflightError) as error:
            preflight(other)
        assert str(error.value) == (
            f"policy server (rollout) at {url} serves 'llava-hf/llava-1.5-7b-hf', not the base model 'world' "
            "(set rollout.model to its name there, or serve the policy's base model)"
        )
        preflight(load(None, ["--rollout.engine", "server", "--rollout.base_url", url, "--rollout.model",
                              "llava-hf/llava-1.5-7b-hf"]))  # fmt: skip
    dead = dead_port()
    out = train(tiny_world, tmp_path, "--rollout.engine", "server", "--rollout.base_url", dead)
    assert out.returncode == 2
    line = error_line(out)
    assert line.startswith(f"ovip: preflight failed: policy server (rollout) at {dead}: connection refused")


def test_policy_servers_sample_lora_adapters_only():
    from ovip.errors import ConfigError
    from ovip.train.setup import check_setup

    full = load(
        None, ["--rollout.engine", "server", "--rollout.base_url", "http://x/v1", "--model.finetune", "full"]
    )
    with pytest.raises(ConfigError, match="^model.finetune: rollout.engine server pushes LoRA adapters"):
        check_setup(full)
