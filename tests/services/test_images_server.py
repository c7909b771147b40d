"""`ovip serve images`: the OpenAI Images API over the world's renderer and over a tiny `diffusers` pipeline,
batching concurrent requests into one pipeline call, behind the server guard (token off-loopback, body and
time caps)."""

import base64
import io
import threading
import time

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from ovip.config.world import WorldConfig
from ovip.negatives.serve import DiffusersBackend, WorldBackend, make_images_app
from ovip.services.chat_server import serve_in_thread
from ovip.services.server import Guard, api_key_for
from ovip.world.parse import text_to_scene
from ovip.world.render import render


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


def test_the_openai_client_draws_world_images():
    cfg = WorldConfig()
    with serve_in_thread(make_images_app(WorldBackend(cfg), "world")) as url:
        client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        reply = client.images.generate(
            model="world",
            prompt="a red ball left of a blue box .",
            n=2,
            size="64x64",
            response_format="b64_json",
            extra_body={"seed": 7},
        )
        first, second = (decode(d.b64_json) for d in reply.data)
        with pytest.raises(openai.NotFoundError, match="The model 'dall-e-3' does not exist"):
            client.images.generate(
                model="dall-e-3", prompt="a red ball .", size="64x64", response_format="b64_json"
            )
        with pytest.raises(openai.BadRequestError, match="only response_format b64_json"):
            client.images.generate(model="world", prompt="a red ball .", size="64x64", response_format="url")
        with pytest.raises(openai.UnprocessableEntityError, match="names no object"):  # a path is only words
            client.images.generate(prompt="/etc/passwd", size="64x64", response_format="b64_json")
    scene, _ = text_to_scene("a red ball left of a blue box .", cfg, 7)
    assert np.array_equal(np.asarray(first), np.asarray(render(scene, 7, 64)))
    assert first.size == (64, 64) and not np.array_equal(np.asarray(first), np.asarray(second))  # seeds 7, 8


def test_concurrent_requests_share_one_pipeline_call(tiny_pipeline):
    """Six requests at once, at most four per call: two pipeline calls; each image is the one a single
    request with its seed draws (equal up to the float rounding of batched kernels)."""
    app = make_images_app(DiffusersBackend(tiny_pipeline, steps=2), "tiny", max_batch=4, batch_wait=0.2)
    images = {}
    with serve_in_thread(app) as url:

        def draw(seed):
            reply = httpx.post(
                url + "/images/generations",
                timeout=60,
                json={
                    "prompt": f"a red cat {seed}",
                    "size": "32x32",
                    "response_format": "b64_json",
                    "seed": seed,
                },
            )
            images[seed] = np.asarray(decode(reply.json()["data"][0]["b64_json"]), dtype=np.int16)

        threads = [threading.Thread(target=draw, args=(seed,)) for seed in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert app.state.batcher.calls == 2
        single = {}
        for seed in (0, 5):
            reply = httpx.post(
                url + "/images/generations",
                timeout=60,
                json={"prompt": f"a red cat {seed}", "size": "32x32", "seed": seed},
            )
            single[seed] = np.asarray(decode(reply.json()["data"][0]["b64_json"]), dtype=np.int16)
    assert app.state.batcher.calls == 4
    for seed in (0, 5):
        assert np.abs(images[seed] - single[seed]).max() <= 2
    assert np.abs(images[0] - images[1]).max() > 10  # different seeds, different images


def test_off_loopback_needs_a_token_and_every_request_carries_it(monkeypatch):
    monkeypatch.delenv("OVIP_API_KEY", raising=False)
    with pytest.raises(ValueError, match="refusing to listen on 0.0.0.0 without a token: set OVIP_API_KEY"):
        api_key_for("0.0.0.0")
    assert api_key_for("127.0.0.1") is None and api_key_for("localhost") is None
    monkeypatch.setenv("OVIP_API_KEY", "s3cret")
    app = Guard(make_images_app(WorldBackend(WorldConfig()), "world"), api_key_for("0.0.0.0"))
    with serve_in_thread(app, host="0.0.0.0") as url:
        body = {"prompt": "a red ball .", "size": "64x64"}
        missing = httpx.post(url + "/images/generations", json=body)
        wrong = httpx.post(url + "/images/generations", json=body, headers={"Authorization": "Bearer nope"})
        assert missing.status_code == wrong.status_code == 401
        assert "missing or wrong bearer token" in missing.json()["error"]["message"]
        client = openai.OpenAI(base_url=url, api_key="s3cret", max_retries=0)
        assert client.images.generate(prompt="a red ball .", size="64x64", response_format="b64_json").data
        assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200  # health needs no token


def test_oversized_bodies_and_slow_requests_are_refused():
    class Slow(WorldBackend):
        def generate(self, jobs):
            time.sleep(1.0)
            return super().generate(jobs)

    app = Guard(make_images_app(Slow(WorldConfig()), "world"), None, max_body_bytes=2000, max_seconds=0.3)
    with serve_in_thread(app) as url:
        big = {"prompt": "a red ball . " * 500, "size": "64x64"}
        assert httpx.post(url + "/images/generations", json=big).status_code == 413

        def chunks():  # no Content-Length: the cap holds while the body streams in
            for _ in range(10):
                yield b" " * 500

        streamed = httpx.post(
            url + "/images/generations", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        start = time.monotonic()
        slow = httpx.post(url + "/images/generations", json={"prompt": "a red ball .", "size": "64x64"})
        assert slow.status_code == 504 and time.monotonic() - start < 0.9
        assert httpx.post(url + "/images/generations", json={"prompt": "x", "size": "64"}).status_code == 400


def test_serve_images_refuses_an_open_address_without_a_token(tiny_world):
    from conftest import run_ovip

    environ = {k: v for k, v in tiny_world[2].items() if k != "OVIP_API_KEY"}
    out = run_ovip(
        ["serve", "images", "--model", "world", "--host", "0.0.0.0", "--port", "1"], environ, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "ovip: error: refusing to listen on 0.0.0.0 without a token: set OVIP_API_KEY "
        "(clients send it as their API key), or bind 127.0.0.1"
    )
