"""`negatives.kind http`: the Images API client against a real local `ovip serve images` app."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from ovip.config.world import WorldConfig
from ovip.negatives.http import HttpImageSynthesizer
from ovip.negatives.serve import WorldBackend, make_images_app
from ovip.services.chat_server import serve_in_thread
from ovip.world.parse import text_to_scene
from ovip.world.render import render


@pytest.fixture(scope="module")
def world_images():
    app = make_images_app(WorldBackend(WorldConfig()), "world")
    with serve_in_thread(app) as url:
        yield url


def synth(url, **kw):
    return HttpImageSynthesizer(url, "world", height=64, width=64, timeout=5, max_retries=0, **kw)


def test_draws_the_requested_image_with_the_per_call_seed(world_images):
    negative = synth(world_images).synthesize("a red ball .", Image.new("RGB", (8, 8)), seed=3)
    assert negative.ok and negative.image.size == (64, 64) and negative.image.mode == "RGB"
    scene, _ = text_to_scene("a red ball .", WorldConfig(), 3)
    assert np.array_equal(np.asarray(negative.image), np.asarray(render(scene, 3, 64)))
    fixed = synth(world_images, seed=0)  # the authors' service: seed 0 for every image
    a = fixed.synthesize("a red ball .", None, seed=1).image
    b = fixed.synthesize("a red ball .", None, seed=2).image
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_request_body_is_the_openai_one_plus_seed_and_steps():
    body = HttpImageSynthesizer("http://x/v1", "black-forest-labs/FLUX.1-dev").request("a cat", seed=9)
    assert body == {
        "model": "black-forest-labs/FLUX.1-dev",
        "prompt": "a cat",
        "n": 1,
        "size": "384x384",
        "response_format": "b64_json",
        "seed": 9,
        "steps": 40,
        "guidance_scale": 7.5,
    }


def test_failures_are_counted_values(world_images):
    from ovip.services.chat_server import make_app

    s = synth(world_images)
    assert s.synthesize("  ", None, seed=0).error == "empty description"
    assert "HTTP 422" in s.synthesize("no objects at all", None, seed=0).error
    wrong_size = HttpImageSynthesizer(world_images, "world", height=64, width=32, timeout=5, max_retries=0)
    assert "HTTP 422" in wrong_size.synthesize("a red ball .", None, seed=0).error  # square only (world)
    assert (s.calls, s.failures) == (2, 2)

    def replies(messages, params):
        return "not an image"

    bad = {"data": [{"b64_json": base64.b64encode(b"not a png").decode()}]}
    small = io.BytesIO()
    Image.new("RGB", (16, 16)).save(small, format="PNG")
    small = {"data": [{"b64_json": base64.b64encode(small.getvalue()).decode()}]}
    from fastapi import FastAPI

    app, answers = FastAPI(), iter([bad, small, {"data": []}])

    @app.post("/v1/images/generations")
    def generations():
        return next(answers)

    with serve_in_thread(app) as url:
        odd = synth(url)
        assert "undecodable image" in odd.synthesize("a red ball .", None, seed=0).error
        assert "image of 16x16, asked for 64x64" in odd.synthesize("a red ball .", None, seed=0).error
        assert "malformed images reply" in odd.synthesize("a red ball .", None, seed=0).error
        assert odd.failures == 3
    with serve_in_thread(make_app(replies)) as url:  # a chat server: 404 for this path
        assert "HTTP 404" in synth(url).synthesize("a red ball .", None, seed=0).error


def test_an_oversized_image_names_its_real_limit():
    """The client refuses a reply image above 4x the asked size from its header; the message cited
    train.max_image_pixels, which plays no part here."""
    from fastapi import FastAPI

    big = io.BytesIO()
    Image.new("1", (200, 100)).save(big, format="PNG")  # 20,000 pixels > 4 x 64 x 64 = 16,384
    app = FastAPI()

    @app.post("/v1/images/generations")
    def generations():
        return {"data": [{"b64_json": base64.b64encode(big.getvalue()).decode()}]}

    with serve_in_thread(app) as url:
        negative = synth(url).synthesize("a red ball .", None, seed=0)
    assert not negative.ok
    assert (
        "image of 200x100 = 20,000 pixels > the pixel limit 16,384 (4x the 64x64 asked for: "
        in negative.error
    )
    assert "negatives.width x negatives.height" in negative.error and "max_image_pixels" not in negative.error
