"""Tests for ovip.negatives.diffusion with a tiny Stable Diffusion pipeline built in-process (no downloads)."""

import numpy as np
import pytest
import torch
from PIL import Image

from ovip.negatives.diffusion import DiffusersSynthesizer


def _synth(pipeline, **kwargs):
    return DiffusersSynthesizer(
        height=32, width=32, num_inference_steps=2, device="cpu", pipeline=pipeline, **kwargs
    )


def test_draws_an_image_of_the_requested_size(tiny_pipeline):
    negative = _synth(tiny_pipeline).synthesize("a red cat", Image.new("RGB", (8, 8)), seed=5)
    assert negative.ok and negative.error is None
    assert negative.image.size == (32, 32) and negative.image.mode == "RGB"
    assert np.asarray(negative.image).std() > 0


def test_fixed_seed_zero_by_default_as_the_authors(tiny_pipeline):
    synth, positive = _synth(tiny_pipeline), Image.new("RGB", (8, 8))
    a = np.asarray(synth.synthesize("a red cat", positive, seed=1).image)
    b = np.asarray(synth.synthesize("a red cat", positive, seed=2).image)
    assert np.array_equal(a, b)  # the per-call seed is ignored: torch.Generator("cpu").manual_seed(0)
    per_call = _synth(tiny_pipeline, seed=None)
    c = np.asarray(per_call.synthesize("a red cat", positive, seed=1).image)
    d = np.asarray(per_call.synthesize("a red cat", positive, seed=2).image)
    assert not np.array_equal(c, d)
    assert np.array_equal(c, np.asarray(per_call.synthesize("a red cat", positive, seed=1).image))


class RecordingPipeline:
    """A stand-in pipeline that records its call and returns a blank image (for the argument contract)."""

    def __init__(self, fail=False):
        self.kwargs, self.fail = None, fail

    def __call__(
        self, prompt, height, width, num_inference_steps, guidance_scale, generator, max_sequence_length=256
    ):
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        self.kwargs = dict(prompt=prompt, height=height, width=width, steps=num_inference_steps,
                           guidance=guidance_scale, seed=generator.initial_seed(), device=generator.device.type,
                           max_sequence_length=max_sequence_length)  # fmt: skip
        return type("Output", (), {"images": [Image.new("L", (width, height))]})()


def test_paper_defaults_reach_the_pipeline():
    pipeline = RecordingPipeline()
    negative = DiffusersSynthesizer(pipeline=pipeline).synthesize(
        "a blue bird", Image.new("RGB", (4, 4)), seed=9
    )
    assert negative.image.size == (384, 384) and negative.image.mode == "RGB"
    assert pipeline.kwargs == dict(prompt="a blue bird", height=384, width=384, steps=40, guidance=7.5, seed=0,
                                   device="cpu", max_sequence_length=512)  # fmt: skip


def test_failures_are_values(tmp_path):
    failing = DiffusersSynthesizer(pipeline=RecordingPipeline(fail=True))
    negative = failing.synthesize("a cat", Image.new("RGB", (4, 4)), seed=0)
    assert negative.image is None and "CUDA out of memory" in negative.error
    assert failing.synthesize("  ", Image.new("RGB", (4, 4)), seed=0).error == "empty description"
    assert (failing.calls, failing.failures) == (2, 2)
    missing = DiffusersSynthesizer(
        model=str(tmp_path), device="cpu"
    )  # an empty local dir: no model_index.json
    for _ in range(2):  # the load error is remembered, not retried
        negative = missing.synthesize("a cat", Image.new("RGB", (4, 4)), seed=0)
        assert negative.image is None and negative.error.startswith("cannot load")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bfloat16_on_cuda_with_the_authors_cpu_generator(tiny_pipeline):
    """The authors' setting: bf16 weights on the GPU, noise drawn from a CPU generator seeded 0."""
    pipeline = tiny_pipeline.to("cuda", torch.bfloat16)
    try:
        synth = _synth(pipeline)
        a = synth.synthesize("a red cat", Image.new("RGB", (8, 8)), seed=1)
        b = synth.synthesize("a red cat", Image.new("RGB", (8, 8)), seed=2)
        assert a.ok and a.image.size == (32, 32)
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    finally:
        tiny_pipeline.to("cpu", torch.float32)
