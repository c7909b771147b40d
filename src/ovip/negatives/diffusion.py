"""I- = Diff(T-): negative images from a `diffusers` text-to-image pipeline (paper §2.2, Eq. 3; Appendix B.2).

Defaults are the paper's (Appendix B.2): FLUX.1-dev, 384x384, 40 inference steps, guidance scale 7.5. Where the
paper is silent we follow the authors' service (`annotations/annotate.py`, `setup_generation_route`): bfloat16
weights, `max_sequence_length=512` (passed only to pipelines that take it), and a FIXED seed: every image is drawn
with `torch.Generator("cpu").manual_seed(0)`, whatever the example. `seed=0` (the default) reproduces that;
`seed=None` uses the per-call `seed` argument of `synthesize` instead. The positive image is not used: the paper
synthesizes from the description alone.
"""

from __future__ import annotations

import inspect

import torch
from PIL import Image

from ovip.records import NegativeImage


class DiffusersSynthesizer:
    """`ovip.records.ImageSynthesizer` over a `diffusers` pipeline, loaded lazily on the first call.

    Pass `pipeline=` to use one already built (tests build a tiny one in-process). A pipeline that cannot be
    loaded, an empty description or a failed generation gives `NegativeImage(image=None, error=...)`, counted in
    `failures`; `synthesize` never raises. A load failure is remembered and not retried.
    """

    def __init__(
        self,
        model: str = "black-forest-labs/FLUX.1-dev",
        height: int = 384,
        width: int = 384,
        num_inference_steps: int = 40,
        guidance_scale: float = 7.5,
        max_sequence_length: int = 512,
        dtype: str = "bfloat16",
        device: str = "cuda",
        seed: int | None = 0,
        pipeline=None,
    ):
        self.model = model
        self.height = height
        self.width = width
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.max_sequence_length = max_sequence_length
        self.dtype = dtype
        self.device = device
        self.seed = seed
        self.calls = 0
        self.failures = 0
        self._pipeline = pipeline
        self._load_error: str | None = None
        if pipeline is not None:
            _quiet(pipeline)

    @property
    def pipeline(self):
        """The pipeline, loaded on first use with `AutoPipelineForText2Image.from_pretrained`."""
        if self._pipeline is None and self._load_error is None:
            try:
                from diffusers import AutoPipelineForText2Image

                pipeline = AutoPipelineForText2Image.from_pretrained(
                    self.model, torch_dtype=getattr(torch, self.dtype)
                )
                self._pipeline = _quiet(pipeline.to(self.device))
            except Exception as e:
                self._load_error = f"cannot load {self.model}: {type(e).__name__}: {e}"
        return self._pipeline

    def synthesize(self, description: str, positive: Image.Image, seed: int) -> NegativeImage:
        """Draw one `height` x `width` RGB image for `description` (T-); `positive` is ignored (see module doc)."""
        self.calls += 1
        if not description or not description.strip():
            return self._fail("empty description")
        pipeline = self.pipeline
        if pipeline is None:
            return self._fail(self._load_error or "no pipeline")
        generator = torch.Generator("cpu").manual_seed(self.seed if self.seed is not None else seed)
        kwargs = dict(
            prompt=description,
            height=self.height,
            width=self.width,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
        )
        if "max_sequence_length" in inspect.signature(pipeline.__call__).parameters:
            kwargs["max_sequence_length"] = self.max_sequence_length
        try:
            image = pipeline(**kwargs).images[0]
        except Exception as e:
            return self._fail(f"generation failed: {type(e).__name__}: {e}")
        if not isinstance(image, Image.Image):
            return self._fail(f"pipeline returned {type(image).__name__}, not a PIL image")
        return NegativeImage(image=image.convert("RGB"))

    def _fail(self, error: str) -> NegativeImage:
        self.failures += 1
        return NegativeImage(image=None, error=error)


def _quiet(pipeline):
    if hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)
    return pipeline
