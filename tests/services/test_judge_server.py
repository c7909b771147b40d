"""`ovip serve judge`: the world's judge and describer behind chat completions answer exactly what the
in-process ones do; a local Hugging Face chat model can stand in; the command starts a real server."""

import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
import torch

from ovip.feedback.chat import completion_text
from ovip.feedback.openai_describer import OpenAIDescriber
from ovip.feedback.openai_judge import OpenAIJudge
from ovip.feedback.server import make_app, serve_in_thread
from ovip.services.client import CallLimits, ServiceClient
from ovip.services.judge import hf_chat_reply, world_reply
from ovip.world.judge import WorldDescriber, WorldJudge

CASES = [
    (
        "describe this image .",
        ["a red ball left of a blue box .", "a red ball .", "a green tent and a ball ball .", "yes ."],
        "a red ball left of a blue box .",
    ),
    ("is there a blue box ?", ["yes , there is a blue box .", "no .", "there is a red ball ."], "yes ."),
    ("what color is the ball ?", ["the ball is red .", "blue .", "red red red ."], "red ."),
]


def test_world_judge_and_describer_over_http_equal_the_in_process_ones():
    with serve_in_thread(make_app(world_reply(), model="world", strict_model=True)) as url:
        judge = OpenAIJudge(url, "world", timeout=5, max_retries=0)
        describer = OpenAIDescriber(url, "world", timeout=5, max_retries=0)
        for query, responses, reference in CASES:
            remote = judge.judge(query, responses, reference)
            local = WorldJudge().judge(query, responses, reference)
            assert [j.score for j in remote] == [j.score for j in local]
            for chosen, rejected in zip(responses, responses[1:], strict=False):
                a = describer.describe(query, chosen, rejected)
                b = WorldDescriber().describe(query, chosen, rejected)
                assert a.text == b.text, (chosen, rejected)
        assert judge.failures == 0
        other = httpx.post(
            url + "/chat/completions",
            json={"model": "world", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert other.status_code == 400 and "only the paper's judge" in other.json()["error"]["message"]


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    """A 2-layer random Llama with a word-level tokenizer and a chat template, saved like a hub model."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ovip.policy.tiny import word_tokenizer

    path = tmp_path_factory.mktemp("tiny-chat")
    tokenizer = word_tokenizer(["<s>", "</s>"], bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}assistant :{% endif %}"
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_a_local_hf_chat_model_answers_chat_completions(tiny_chat_model):
    app = make_app(
        hf_chat_reply(tiny_chat_model, device="cpu", dtype="float32"), model="tiny", strict_model=True
    )
    with serve_in_thread(app) as url:
        client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        ask = lambda: client.chat.completions.create(  # noqa: E731
            model="tiny",
            messages=[{"role": "user", "content": "is there a red ball ?"}],
            max_tokens=5,
            temperature=0,
        )
        first, second = ask(), ask()
        assert (
            first.choices[0].message.content == second.choices[0].message.content
        )  # greedy at temperature 0
        assert len(first.choices[0].message.content.split()) <= 5
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("service", ["judge", "images"])
def test_ovip_serve_starts_a_server(service, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovip.cli", "serve", service, "--model", "world", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url.removesuffix("/v1") + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        if service == "judge":
            assert (
                OpenAIJudge(url, "world", max_retries=0)
                .judge("is there a red ball ?", ["yes ."], "yes .")[0]
                .ok
            )
        else:
            reply = client.images.generate(
                model="world", prompt="a red ball .", size="64x64", response_format="b64_json"
            )
            assert reply.data[0].b64_json
    finally:
        proc.terminate()
        proc.wait(timeout=30)


MALFORMED = [  # (request body, the field the 400 must name)
    ({"model": "world", "messages": "hi"}, "messages:"),
    ({"model": "world", "messages": [5]}, "messages[0]:"),
    ({"model": "world", "messages": []}, "messages:"),
    ({"model": "world"}, "messages:"),
    ({"model": "world", "messages": [{"content": "hi"}]}, "messages[0].role:"),
    ({"model": "world", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role:"),
    ({"model": "world", "messages": [{"role": "user"}]}, "messages[0].content:"),
    ({"model": "world", "messages": [{"role": "user", "content": 5}]}, "messages[0].content:"),
    ({"model": "world", "messages": [{"role": "user", "content": [5]}]}, "messages[0].content[0]:"),
    ({"model": "world", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "content[0].text:"),
    (
        {
            "model": "world",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}],
        },
        "messages[0].content[0].image_url:",
    ),
    ({"model": "world", "messages": [{"role": "user", "content": "hi", "name": 5}]}, "messages[0].name:"),
    ({"model": 5, "messages": [{"role": "user", "content": "hi"}]}, "model:"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model: required"),
    (
        {"model": "world", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
        "temperature:",
    ),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "temperature:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "top_p": -1}, "top_p:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5}, "max_tokens:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "n": 3}, "n:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "n": True}, "n:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "stream": True}, "stream:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "stop": [1]}, "stop:"),
    ({"model": "world", "messages": [{"role": "user", "content": "hi"}], "seed": "x"}, "seed:"),
    ([{"role": "user", "content": "hi"}], "the body must be a JSON object"),
]


def test_every_malformed_field_is_a_400_that_names_it_and_is_not_retried():
    """A malformed request is the client's error: 400 naming the field (never a 500 from inside the judge,
    which ovip's own client would send twice more)."""
    with serve_in_thread(make_app(world_reply(), model="world", strict_model=True)) as url:
        for body, field in MALFORMED:
            reply = httpx.post(url + "/chat/completions", json=body)
            assert reply.status_code == 400, (body, reply.text)
            assert field in reply.json()["error"]["message"], (body, reply.text)
        assert httpx.post(url + "/chat/completions", content=b"{not json").status_code == 400
        client = ServiceClient(url, limits=CallLimits(timeout=5, max_retries=2, retry_wait=0.01))
        outcome = client.call("/chat/completions", {"model": "world", "messages": "hi"}, completion_text)
        assert not outcome.ok and outcome.attempts == 1 and "HTTP 400: messages:" in outcome.error
