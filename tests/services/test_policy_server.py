"""`ovip serve policy` and its client, through real sockets on the tests' tiny world: the served samples of a
batch of world prompts are the in-process `sample_answers` with the same seeds and adapter; adapters load,
list and unload at runtime as vLLM's endpoints do; abuse is refused with a status naming the field or the cap,
and the server keeps serving; the client turns every failure into a value."""

from pathlib import Path

import httpx
import openai
import pytest
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from ovip.config import load
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.rollout import generate_samples, prompt_seed
from ovip.services.chat_server import serve_in_thread
from ovip.services.client import CallLimits
from ovip.services.policy import PolicyBackend, make_policy_app
from ovip.services.policy_client import PolicyClient, data_url
from ovip.services.server import Guard
from ovip.world.build import ensure_base_model
from ovip.world.render import render
from ovip.world.scene import sample_scene

QUERIES = [
    "describe this image .",
    "what color is the ball ?",
    "is there a red box in the image ?",
    "how many objects are there ?",
]


@pytest.fixture(scope="module")
def world(tiny_world, tmp_path_factory):
    """(base model folder, world config, adapter root holding `step-1`: a LoRA adapter changing answers)."""
    _, recipe, environ = tiny_world
    wc = load(str(recipe)).world
    base = ensure_base_model(Path(environ["OVIP_CACHE"]), wc, progress=False)
    root = tmp_path_factory.mktemp("adapters")
    policy = Policy.from_pretrained(str(base), lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    policy.model.save_pretrained(str(root / "step-1"))
    return base, wc, root


def backend(world, **kw) -> PolicyBackend:
    base, _, root = world
    policy = Policy.from_pretrained(str(base), finetune="none")
    return PolicyBackend(policy.model, policy.processor, "world", **({"adapter_root": root} | kw))


@pytest.fixture(scope="module")
def served(world):
    app = make_policy_app(backend(world), batch_wait=0.5)
    with serve_in_thread(app) as url:
        yield url, app


def prompts(wc, n=4):
    images = [render(sample_scene(wc, s, "biased"), s, wc.image_size) for s in range(n)]
    return images, QUERIES[:n]


def chat(image, query="describe this image .", **fields) -> dict:
    content = [{"type": "image_url", "image_url": {"url": data_url(image)}}, {"type": "text", "text": query}]
    return {"model": "world", "messages": [{"role": "user", "content": content}], **fields}


def test_served_samples_are_the_local_samples(world, served, one_thread):
    base, wc, root = world
    url, app = served
    images, queries = prompts(wc)
    seeds = [prompt_seed(3, i) for i in range(len(queries))]
    local = Policy.from_pretrained(str(base), adapter=str(root / "step-1"), finetune="none")
    local.model.eval()
    settings = dict(k=4, temperature=1.2, top_p=0.8, max_new_tokens=12, seeds=seeds)
    want = generate_samples(local.model, local.processor, images, queries, **settings)
    with local.reference() as reference:
        want_base = generate_samples(reference, local.processor, images, queries, **settings)
    client = PolicyClient(url)
    try:
        assert client.load_adapter("ovip-step-1", str(root / "step-1")) == []
        calls = app.state.batcher.calls
        got = client.sample(images, queries, adapter="ovip-step-1", **_client_settings(settings))
        assert app.state.batcher.calls == calls + 1  # four requests at once, one generate call
        got_base = client.sample(images, queries, adapter="world", **_client_settings(settings))
        assert client.unload_adapter("ovip-step-1") == []
    finally:
        client.close()
    assert all(r.ok and r.model == "ovip-step-1" for r in got)
    of_replies = lambda replies: [[(s.text, s.cut, s.token_ids) for s in r.samples] for r in replies]  # noqa: E731
    of_groups = lambda groups: [[(a.text, a.cut, a.token_ids) for a in g] for g in groups]  # noqa: E731
    assert of_replies(got) == of_groups(want) and of_replies(got_base) == of_groups(want_base)
    # the adapter changes the answers: the server sampled with it
    assert of_groups(want) != of_groups(want_base)
    # the served log-probs are the policy's own (temperature 1, no top-p), as the trainer computes them
    for reply, group in zip(got, want, strict=True):
        for s, a in zip(reply.samples, group, strict=True):
            assert s.logprobs == pytest.approx(a.logprobs, abs=1e-5) and max(s.logprobs) <= 0


def _client_settings(settings: dict) -> dict:
    return {k: settings[k] for k in ("k", "temperature", "top_p", "max_new_tokens", "seeds")}


def test_adapters_load_list_and_unload_at_runtime(world, served):
    _, wc, root = world
    url, _ = served
    folder = str(root / "step-1")
    load = lambda body: httpx.post(url + "/load_lora_adapter", json=body)  # noqa: E731
    unload = lambda name: httpx.post(url + "/unload_lora_adapter", json={"lora_name": name})  # noqa: E731
    first = load({"lora_name": "one", "lora_path": folder})
    assert first.status_code == 200 and first.text == "Success: LoRA adapter 'one' added successfully."
    assert load({"lora_name": "b", "lora_path": folder}).status_code == 200
    listed = httpx.get(url + "/models").json()["data"]
    assert [m["id"] for m in listed] == ["world", "one", "b"]
    assert listed[1]["parent"] == "world" and listed[1]["root"] == str(Path(folder).resolve())
    again = load({"lora_name": "one", "lora_path": folder})
    assert again.status_code == 400 and "has already been loaded" in again.json()["error"]["message"]
    assert load({"lora_name": "one", "lora_path": folder, "load_inplace": True}).status_code == 200
    image = prompts(wc, 1)[0][0]
    client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0)  # the official client speaks to it
    assert [m.id for m in client.models.list()] == ["world", "one", "b"]
    body = chat(image, model="b", n=2, max_tokens=4, seed=1, logprobs=True)
    reply = client.chat.completions.create(**body)
    assert reply.model == "b" and len(reply.choices) == 2
    assert {c.finish_reason for c in reply.choices} <= {"stop", "length"}
    assert all(c.logprobs.content and c.logprobs.content[0].logprob <= 0 for c in reply.choices)
    assert reply.usage.completion_tokens == sum(len(c.logprobs.content) for c in reply.choices)
    assert unload("one").status_code == unload("b").status_code == 200
    gone = unload("b")
    assert (
        gone.status_code == 404 and "The lora adapter 'b' cannot be found" in gone.json()["error"]["message"]
    )
    unknown = httpx.post(url + "/chat/completions", json=chat(image, model="b"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "The model 'b' does not exist (served: 'world')"
    assert [m["id"] for m in httpx.get(url + "/models").json()["data"]] == ["world"]


@pytest.fixture(scope="module")
def guarded(world, tmp_path_factory):
    """The policy server bound off loopback behind the guard: a token, a 200 kB body cap."""
    app = Guard(make_policy_app(backend(world), max_n=64, max_tokens=512), "s3cret", max_body_bytes=200_000)
    with serve_in_thread(app, host="0.0.0.0") as url:
        yield url


def test_abuse_is_refused_and_the_server_keeps_serving(world, guarded, tmp_path):
    _, wc, root = world
    url, image = guarded, prompts(wc, 1)[0][0]
    key = {"Authorization": "Bearer s3cret"}

    def post(path, body=None, **kw):
        return httpx.post(url + path, json=body, headers=kw.pop("headers", key), timeout=30, **kw)

    def refused(reply, status, *words):
        assert reply.status_code == status, reply.text
        message = reply.json()["error"]["message"]
        assert all(w in message for w in words), message

    refused(post("/chat/completions", chat(image), headers={}), 401, "missing or wrong bearer token")
    refused(post("/chat/completions", chat(image), headers={"Authorization": "Bearer nope"}), 401, "bearer")
    refused(httpx.get(url + "/models"), 401, "bearer")
    noise = Image.frombytes(
        "RGB", (300, 300), torch.randint(0, 256, (300 * 300 * 3,), dtype=torch.uint8).numpy()
    )
    refused(post("/chat/completions", chat(noise)), 413, "> 200000")
    refused(
        post("/chat/completions", content=b'{"model": "world", "messages": [', headers=key), 400, "not JSON"
    )
    refused(post("/chat/completions", [1, 2]), 400, "JSON object")
    refused(
        post("/chat/completions", {"model": "world"}), 400, "messages must be a list of exactly one message"
    )
    bad_role = {"model": "world", "messages": [{"role": "assistant", "content": "hi"}]}
    refused(post("/chat/completions", bad_role), 400, "messages[0].role must be 'user'")
    bad_part = chat(image) | {"messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]}
    refused(post("/chat/completions", bad_part), 400, "messages[0].content[0]")
    by_url = chat(image)
    by_url["messages"][0]["content"][0]["image_url"]["url"] = "file:///etc/passwd"
    refused(post("/chat/completions", by_url), 400, "messages[0].content[0].image_url.url", "never fetches")
    broken = chat(image)
    broken["messages"][0]["content"][0]["image_url"]["url"] = "data:image/png;base64,bm90IGFuIGltYWdl"
    refused(post("/chat/completions", broken), 400, "messages[0].content[0].image_url.url: cannot decode")
    refused(
        post("/chat/completions", chat(image, n=10**6)), 400, "n must be an integer in [1, 64] (--max-n 64)"
    )
    refused(
        post("/chat/completions", chat(image, max_tokens=10**9)),
        400,
        "max_tokens",
        "[1, 512] (--max-tokens 512)",
    )
    refused(post("/chat/completions", chat(image, temperature="hot")), 400, "temperature must be a number")
    refused(post("/chat/completions", chat(image, stop=["."])), 400, "stop: not served by ovip serve policy")
    refused(post("/chat/completions", chat(image, n=2, temperature=0)), 400, "n must be 1 with temperature 0")
    refused(post("/chat/completions", chat(image, model="gpt-4o")), 404, "The model 'gpt-4o' does not exist")
    # adapters: only PEFT safetensors folders under the adapter root
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (outside / name).write_bytes((root / "step-1" / name).read_bytes())
    refused(
        post("/load_lora_adapter", {"lora_name": "x", "lora_path": str(outside)}),
        403,
        "outside the adapter root",
    )
    (root / "escape").symlink_to(outside)  # a link inside the root to a folder outside it
    refused(post("/load_lora_adapter", {"lora_name": "x", "lora_path": str(root / "escape")}), 403, "outside")
    refused(post("/load_lora_adapter", {"lora_name": "x", "lora_path": str(root / "../..")}), 403, "outside")
    pickled = root / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_bytes((root / "step-1" / "adapter_config.json").read_bytes())
    (pickled / "adapter_model.bin").write_bytes(b"not read")
    refused(
        post("/load_lora_adapter", {"lora_name": "x", "lora_path": str(pickled)}),
        400,
        "no adapter_model.safetensors",
    )
    refused(
        post("/load_lora_adapter", {"lora_name": "a.b", "lora_path": str(root)}), 400, "lora_name must be"
    )
    refused(
        post("/load_lora_adapter", {"lora_name": "ra", "lora_path": str(root)}), 400, "part of PEFT's 'lora_'"
    )
    refused(
        post("/unload_lora_adapter", {"lora_name": "never"}), 404, "The lora adapter 'never' cannot be found"
    )
    # ... and it still serves
    reply = post("/chat/completions", chat(image, n=3, max_tokens=5, seed=4, logprobs=True))
    assert reply.status_code == 200 and len(reply.json()["choices"]) == 3
    assert all(len(c["logprobs"]["content"]) >= 1 for c in reply.json()["choices"])
    assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200  # health needs no token


def test_every_adapter_load_is_refused_without_an_adapter_root(world):
    app = make_policy_app(backend(world, adapter_root=None))
    with serve_in_thread(app) as url:
        reply = httpx.post(
            url + "/load_lora_adapter", json={"lora_name": "x", "lora_path": str(world[2] / "step-1")}
        )
    assert reply.status_code == 403 and "--adapter-root" in reply.json()["error"]["message"]


def stale_app(model: str) -> FastAPI:
    """A server answering every request from `model`, whatever was asked (a sampler that ignored a load)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        n = (await request.json())["n"]
        choice = {"message": {"role": "assistant", "content": "a ball ."}, "finish_reason": "stop"}
        return JSONResponse({"model": model, "choices": [choice | {"index": i} for i in range(n)]})

    return app


def test_the_client_turns_failures_into_values(world, served, monkeypatch, one_thread):
    _, wc, root = world
    url, _ = served
    images, queries = prompts(wc, 2)
    args = dict(k=2, temperature=1.0, top_p=0.9, max_new_tokens=4, seeds=[1, 2])
    dead = "http://127.0.0.1:1/v1"
    quick = CallLimits(
        timeout=60, max_retries=1, retry_wait=0.05
    )  # the dead replica is retried once, at once
    client = PolicyClient(
        f"{dead},{url}", limits=quick
    )  # a dead replica first: requests move to the live one
    try:
        replies = client.sample(images, queries, adapter="world", **args)
        assert all(r.ok and len(r.samples) == 2 and r.url.startswith(url) for r in replies)
        errors = client.load_adapter("c", str(root / "step-1"))
        assert len(errors) == 1 and errors[0].startswith(
            f"load adapter 'c' from {root / 'step-1'} on {dead}:"
        )
        models = client.models()
        assert models[1] == ["world", "c"] and models[0].startswith(f"{dead}: connection error")
        assert client.unload_adapter("c")[0].startswith(f"unload adapter 'c' on {dead}")
        missing = client.sample(images[:1], queries[:1], adapter="c", **args | {"seeds": [1]})
        assert not missing[0].ok and "HTTP 404: The model 'c' does not exist" in missing[0].error
    finally:
        client.close()
    with serve_in_thread(stale_app("world")) as stale:
        client = PolicyClient(stale)
        try:
            (reply,) = client.sample(images[:1], queries[:1], adapter="ovip-step-2", **args | {"seeds": [1]})
        finally:
            client.close()
    assert not reply.ok and reply.samples == () and reply.model == "world"
    assert reply.error.startswith(
        "the reply came from model 'world', not the requested adapter 'ovip-step-2'"
    )
    monkeypatch.setenv("OVIP_API_KEY", "wrong")
    with serve_in_thread(Guard(make_policy_app(backend(world)), "right")) as locked:
        client = PolicyClient(locked)
        try:
            (reply,) = client.sample(images[:1], queries[:1], adapter="world", **args | {"seeds": [1]})
        finally:
            client.close()
    assert not reply.ok and "HTTP 401" in reply.error


def test_ovip_serve_policy_starts_a_server(tiny_world, world, tmp_path):
    from processes import ovip_serve

    root, recipe, environ = tiny_world
    adapters = world[2]
    serve = ("--config", str(recipe), "--adapter-root", str(adapters))
    with ovip_serve("policy", *serve, stderr=tmp_path / "policy.txt", env=environ, startup=120) as (url, _):
        client = PolicyClient(url)
        try:
            assert client.load_adapter("s1", str(adapters / "step-1")) == []
            (reply,) = client.sample(*prompts(world[1], 1), k=2, temperature=1.2, top_p=0.8, max_new_tokens=6,
                                     seeds=[5], adapter="s1")  # fmt: skip
        finally:
            client.close()
    assert reply.ok and len(reply.samples) == 2 and reply.model == "s1"


def test_serve_policy_refuses_an_open_address_without_a_token(tiny_world):
    from conftest import run_ovip

    environ = {k: v for k, v in tiny_world[2].items() if k != "OVIP_API_KEY"}
    out = run_ovip(["serve", "policy", "--host", "0.0.0.0", "--port", "1"], environ, timeout=60)
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token: set OVIP_API_KEY" in out.stderr
