"""The "Random Sampling" negative image of the paper's ablation (Table 1, Table 5).

Table 5: "Sampling denotes selecting a random image from the entire dataset as the negative image." The
candidates are visited in an order drawn from `seed`; the first one that is not the positive image itself
(same file, or same pixels) is returned. Only when every candidate is the positive is the positive returned.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from PIL import Image

from ovip.records import NegativeImage


class RandomImageSynthesizer:
    """`ovip.records.ImageSynthesizer` that ignores the description and returns another dataset image."""

    def __init__(self, images: list[str | os.PathLike]):
        self.images = [str(p) for p in images]
        self.calls = 0
        self.failures = 0

    def synthesize(self, description: str, positive: Image.Image, seed: int) -> NegativeImage:
        """I- = a random image of the dataset other than `positive`, loaded as RGB; `path` is its file."""
        self.calls += 1
        if not self.images:
            return self._fail("no images to sample from")
        order = list(self.images)
        random.Random(seed).shuffle(order)
        fallback: NegativeImage | None = None
        errors = []
        for path in order:
            try:
                with Image.open(path) as opened:
                    candidate = opened.convert("RGB")
            except Exception as e:  # a broken file in the pool is skipped, not fatal
                errors.append(f"{path}: {type(e).__name__}")
                continue
            if _same_file(path, positive) or _same_pixels(candidate, positive):
                fallback = fallback or NegativeImage(image=candidate, path=path)
                continue
            return NegativeImage(image=candidate, path=path)
        if fallback is not None:  # the pool holds nothing but the positive: unavoidable
            return fallback
        return self._fail("no readable image: " + ", ".join(errors[:5]))

    def _fail(self, error: str) -> NegativeImage:
        self.failures += 1
        return NegativeImage(image=None, error=error)


def _same_file(path: str, positive: Image.Image) -> bool:
    filename = getattr(positive, "filename", "")
    return bool(filename) and Path(filename).resolve() == Path(path).resolve()


def _same_pixels(candidate: Image.Image, positive: Image.Image) -> bool:
    if candidate.size != positive.size:
        return False
    return candidate.tobytes() == positive.convert("RGB").tobytes()
