"""The "Cropping" negative image of the paper's ablation (Table 1, Table 5): a model-free alternative to Diff.

Table 5: "Cropping refers to randomly removing 0–20% of the positive image." The paper says no more, so: a
fraction f ~ U(0, max_fraction) of the image's area is removed by keeping one randomly placed rectangle of area
(1 - f) with the image's aspect ratio (each side scaled by sqrt(1 - f)), which is then resized back to the
original size, as mDPO's `RandomResizedCrop` does (mDPO keeps only 1-20% of the area instead; the authors'
`_CROP` = (0.999, 1.0) keeps almost all of it). The crop depends only on `seed`, so the policy and the reference
see the same negative (unlike mDPO, which re-draws the crop in every forward pass).
"""

from __future__ import annotations

import math
import random

from PIL import Image

from ovip.records import NegativeImage


class CropSynthesizer:
    """`ovip.records.ImageSynthesizer` that ignores the description and crops the positive image."""

    def __init__(self, max_fraction: float = 0.2):
        if not 0.0 <= max_fraction < 1.0:
            raise ValueError(f"max_fraction must be in [0, 1), got {max_fraction}")
        self.max_fraction = max_fraction
        self.calls = 0
        self.failures = 0

    def box(self, width: int, height: int, seed: int) -> tuple[int, int, int, int]:
        """The kept rectangle (left, upper, right, lower) for an image of `width` x `height`."""
        rng = random.Random(seed)
        removed = rng.uniform(0.0, self.max_fraction)
        scale = math.sqrt(1.0 - removed)
        w = max(1, min(width, round(width * scale)))
        h = max(1, min(height, round(height * scale)))
        left = rng.randint(0, width - w)
        upper = rng.randint(0, height - h)
        return left, upper, left + w, upper + h

    def synthesize(self, description: str, positive: Image.Image, seed: int) -> NegativeImage:
        """I- = the positive image with 0-`max_fraction` of its area cropped away, resized back."""
        self.calls += 1
        try:
            image = positive.convert("RGB")
            cropped = image.crop(self.box(image.width, image.height, seed))
            return NegativeImage(image=cropped.resize(image.size, Image.Resampling.BICUBIC))
        except Exception as e:
            self.failures += 1
            return NegativeImage(image=None, error=f"crop failed: {type(e).__name__}: {e}")
