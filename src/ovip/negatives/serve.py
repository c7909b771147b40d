"""`ovip serve images`: the OpenAI Images API (`POST /v1/images/generations`) over a `diffusers` pipeline or
the world's renderer, batching concurrent requests into one pipeline call.

The paper serves its diffusion model (FLUX.1-dev) as a FastAPI service and runs two replicas for four
samplers (Appendix B.2, "Software infrastructure"; Appendix D). A request is the OpenAI one
(https://platform.openai.com/docs/api-reference/images/create): `prompt`, `n`, `size` "WxH",
`response_format` (only "b64_json": this server never writes or reads a file or a URL for a client), `model`
(when given, it must be the served name, else 404 as vLLM and OpenAI answer); and three fields the OpenAI API
lacks, `seed`, `steps` (num_inference_steps) and `guidance_scale`. Requests that wait while the pipeline is
busy (or arrive within `batch_wait` seconds of each other) and share size, steps and guidance are drawn in
one pipeline call of at most `max_batch` prompts, each with its own `torch.Generator("cpu").manual_seed(seed)`
(the authors' generator; without a seed the server picks one). Batched images equal single ones up to the
float rounding of batched kernels. The world backend draws `render(text_to_scene(prompt))`, square sizes only.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import secrets
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from ovip.services.batching import Batcher

MAX_PROMPT_CHARS = 4000


@dataclass(frozen=True)
class ImageJob:
    """One image to draw."""

    prompt: str
    width: int
    height: int
    seed: int
    steps: int | None
    guidance: float | None

    @property
    def key(self) -> tuple:
        """Jobs with equal keys can share one pipeline call."""
        return self.width, self.height, self.steps, self.guidance


class DiffusersBackend:
    """Text-to-image with a `diffusers` pipeline: `generate(jobs)` draws them in one call."""

    def __init__(self, pipeline, steps: int = 40, guidance: float = 7.5, max_sequence_length: int = 512):
        self.pipeline, self.steps, self.guidance = pipeline, steps, guidance
        self.max_sequence_length = max_sequence_length
        if hasattr(pipeline, "set_progress_bar_config"):
            pipeline.set_progress_bar_config(disable=True)

    @classmethod
    def load(cls, path: str, dtype: str = "bfloat16", device: str = "cuda", **kw) -> DiffusersBackend:
        """`DiffusionPipeline.from_pretrained(path)`: a model that does not load stops the server at start."""
        import torch
        from diffusers import DiffusionPipeline

        pipeline = DiffusionPipeline.from_pretrained(path, torch_dtype=getattr(torch, dtype))
        return cls(pipeline.to(device), **kw)

    def generate(self, jobs: list[ImageJob]) -> list[Image.Image | str]:
        import torch

        first = jobs[0]
        kwargs = dict(
            prompt=[j.prompt for j in jobs],
            height=first.height,
            width=first.width,
            num_inference_steps=first.steps or self.steps,
            guidance_scale=self.guidance if first.guidance is None else first.guidance,
            generator=[torch.Generator("cpu").manual_seed(j.seed) for j in jobs],
        )
        if "max_sequence_length" in inspect.signature(self.pipeline.__call__).parameters:
            kwargs["max_sequence_length"] = self.max_sequence_length
        try:
            images = self.pipeline(**kwargs).images
        except Exception as e:
            return [f"generation failed: {type(e).__name__}: {e}"] * len(jobs)
        return [
            im.convert("RGB") if isinstance(im, Image.Image) else f"not an image: {type(im).__name__}"
            for im in images
        ]


class WorldBackend:
    """The world's text-to-image model, `render(text_to_scene(prompt), seed, size)`."""

    def __init__(self, world_config):
        self.cfg = world_config

    def generate(self, jobs: list[ImageJob]) -> list[Image.Image | str]:
        from ovip.world.parse import text_to_scene
        from ovip.world.render import render

        out = []
        for job in jobs:
            scene, parsed = text_to_scene(job.prompt, self.cfg, job.seed)
            if job.width != job.height:
                out.append(f"the world renderer draws square images, not {job.width}x{job.height}")
            elif not parsed.mentions:
                out.append(f"the prompt names no object of the world: {job.prompt[:100]!r}")
            else:
                out.append(render(scene, job.seed, job.width))
        return out


def make_images_app(
    backend,
    model_name: str,
    max_batch: int = 4,
    batch_wait: float = 0.01,
    max_side: int = 2048,
    max_n: int = 4,
) -> FastAPI:
    """A FastAPI app with POST /v1/images/generations, GET /v1/models and GET /health (no `Guard` yet:
    `ovip.services.server.serve` adds it)."""
    app = FastAPI(title="ovip images")
    batcher = Batcher(backend, max_batch, batch_wait)  # a job is one image
    app.state.batcher = batcher

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "ovip"}]}

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            jobs = _jobs(body, model_name, max_side, max_n)
        except _BadRequest as e:
            return _error(e.status, str(e))
        except Exception as e:
            return _error(400, f"bad request: {type(e).__name__}: {e}")
        if batcher.busy():
            return _error(503, "queue full; retry later")
        results = await asyncio.gather(*(batcher.submit(job) for job in jobs))
        failed = [r for r in results if isinstance(r, str)]
        if failed:
            return _error(422 if "names no object" in failed[0] or "square" in failed[0] else 500, failed[0])
        return JSONResponse(
            {
                "created": int(time.time()),
                "data": [{"b64_json": _png_base64(im), "revised_prompt": None} for im in results],
            }
        )

    return app


class _BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _jobs(body, model_name: str, max_side: int, max_n: int) -> list[ImageJob]:
    """The validated request as jobs; `_BadRequest` names the first problem."""
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    if body.get("model") not in (None, model_name):
        raise _BadRequest(f"The model '{body['model']}' does not exist (this server has '{model_name}')", 404)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise _BadRequest(f"prompt must be a non-empty string of at most {MAX_PROMPT_CHARS} characters")
    if body.get("response_format", "b64_json") != "b64_json":
        raise _BadRequest("only response_format b64_json is served (images are never stored or linked)")
    n = _integer(body, "n", 1, 1, max_n)
    size = body.get("size", "1024x1024")
    try:
        width, height = (int(x) for x in str(size).lower().split("x"))
    except ValueError:
        raise _BadRequest(f"size must look like 384x384, got {size!r}") from None
    if not (8 <= width <= max_side and 8 <= height <= max_side and width % 8 == 0 and height % 8 == 0):
        raise _BadRequest(f"size {width}x{height}: each side a multiple of 8 in [8, {max_side}]")
    seed = _integer(body, "seed", None, 0, 2**63 - 1)
    steps = _integer(body, "steps", None, 1, 500)
    guidance = body.get("guidance_scale")
    if guidance is not None and (
        not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or not 0 <= guidance <= 100
    ):
        raise _BadRequest(f"guidance_scale must be a number in [0, 100], got {guidance!r}")
    base = secrets.randbelow(2**31) if seed is None else seed
    return [
        ImageJob(prompt, width, height, base + i, steps, None if guidance is None else float(guidance))
        for i in range(n)
    ]


def _integer(body: dict, name: str, default, low: int, high: int):
    value = body.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _BadRequest(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}}, status
    )
