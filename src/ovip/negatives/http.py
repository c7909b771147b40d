"""I- = Diff(T-) from a text-to-image service that speaks the OpenAI Images API (paper §2.2, Eq. 3).

The paper runs its diffusion model (FLUX.1-dev, 384x384, 40 steps, guidance 7.5; Appendix B.2) as a FastAPI
service (Appendix B.2, "Software infrastructure"; two replicas in Appendix D). This client sends
`POST {base_url}/images/generations` as in https://platform.openai.com/docs/api-reference/images/create:
`model`, `prompt`, `n: 1`, `size: "WxH"`, `response_format: "b64_json"`, plus the fields a diffusion server
needs and the OpenAI API lacks, `seed`, `steps` (num_inference_steps) and `guidance_scale` (`ovip serve
images` reads them; servers that do not know them ignore them, and then the seed is theirs). The image comes
back inline as base64, never as a URL to fetch. Calls go through the same transport as the chat services
(`ovip.services.client`: total deadline per attempt, bounded attempts, replicas with failover, at most
`max_concurrency` requests in flight per replica), so a failed call, an undecodable image or one of the
wrong size is `NegativeImage(image=None, error=...)`, counted in `failures`; `synthesize` never raises.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading

from PIL import Image

from ovip.data.images import open_image
from ovip.records import NegativeImage
from ovip.services.client import CallLimits, ServiceClient, Unusable, parse_json


class HttpImageSynthesizer:
    """`ovip.records.ImageSynthesizer` over an OpenAI-Images-compatible server (`ovip serve images`, ...).

    `seed=None` (the default) sends the per-call seed of `synthesize` (derived per experience by the loop);
    an integer sends that fixed seed for every image (the authors' service draws every image with seed 0).
    """

    def __init__(
        self,
        base_url,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        height: int = 384,
        width: int = 384,
        num_inference_steps: int = 40,
        guidance_scale: float = 7.5,
        seed: int | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        retry_wait: float = 1.0,
        max_wait: float = 10.0,
        max_concurrency: int = 4,
    ):
        self.model, self.height, self.width = model, height, width
        self.num_inference_steps, self.guidance_scale, self.seed = num_inference_steps, guidance_scale, seed
        # A 384x384 PNG is ~0.3 MB, ~0.4 MB as base64; allow images up to 2048x2048.
        limits = CallLimits(
            timeout=timeout,
            max_retries=max_retries,
            retry_wait=retry_wait,
            max_wait=max_wait,
            max_reply_bytes=32_000_000,
        )
        self.client = ServiceClient(base_url, api_key_env, limits, max_concurrency)
        self.calls = 0
        self.failures = 0
        self._lock = threading.Lock()

    def request(self, description: str, seed: int, steps: int | None = None) -> dict:
        """The request body for one image of `description`."""
        return {
            "model": self.model,
            "prompt": description,
            "n": 1,
            "size": f"{self.width}x{self.height}",
            "response_format": "b64_json",
            "seed": self.seed if self.seed is not None else seed,
            "steps": steps or self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
        }

    def synthesize(self, description: str, positive: Image.Image | None, seed: int) -> NegativeImage:
        """Draw one `width` x `height` RGB image for `description` (T-); `positive` is not sent: the paper
        synthesizes from the description alone."""
        with self._lock:
            self.calls += 1
        if not description or not description.strip():
            return self._fail("empty description")
        outcome = self.client.call("/images/generations", self.request(description, seed), self.decode)
        if not outcome.ok:
            return self._fail(outcome.error)
        return NegativeImage(image=outcome.value)

    def decode(self, raw: bytes) -> Image.Image:
        """The first `data[].b64_json` of an Images API reply, decoded and checked; `Unusable` otherwise."""
        try:
            encoded = parse_json(raw)["data"][0]["b64_json"]
            data = base64.b64decode(encoded, validate=True)
        except (KeyError, IndexError, TypeError, binascii.Error) as e:
            raise Unusable(f"malformed images reply ({type(e).__name__}): {raw[:200]!r}") from None
        # The header's size is checked before a pixel is decoded (an image bomb is not an image). The limit is
        # 4x the size asked for, so that a slightly larger image is decoded and refused by its size below.
        limit = 4 * self.width * self.height
        source = f"4x the {self.width}x{self.height} asked for: negatives.width x negatives.height"
        try:
            image = open_image(io.BytesIO(data), max_pixels=limit, limit_source=source)
            image.load()
        except Exception as e:
            raise Unusable(f"undecodable image: {type(e).__name__}: {e}") from None
        if image.size != (self.width, self.height):
            raise Unusable(f"image of {image.size[0]}x{image.size[1]}, asked for {self.width}x{self.height}")
        return image.convert("RGB")

    def _fail(self, error: str) -> NegativeImage:
        with self._lock:
            self.failures += 1
        return NegativeImage(image=None, error=error)

    @property
    def max_in_flight(self) -> int:
        """Calls the loop may make at once (`train.pipeline` concurrent or overlapped)."""
        return self.client.max_in_flight

    def close(self) -> None:
        self.client.close()
