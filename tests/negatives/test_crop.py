"""Tests for ovip.negatives.crop: remove 0-20% of the positive image (paper Table 5), seeded."""

import numpy as np
import pytest
from PIL import Image

from ovip.negatives.crop import CropSynthesizer


def _gradient(width=60, height=40) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], -1))


def test_removes_at_most_max_fraction_of_the_area():
    crop = CropSynthesizer(max_fraction=0.2)
    fractions = []
    for seed in range(200):
        left, upper, right, lower = crop.box(300, 200, seed)
        assert 0 <= left < right <= 300 and 0 <= upper < lower <= 200
        fractions.append(1 - (right - left) * (lower - upper) / (300 * 200))
    assert min(fractions) >= -0.01 and max(fractions) <= 0.2 + 0.01  # rounding to whole pixels
    assert max(fractions) > 0.15 and min(fractions) < 0.05  # the whole 0-20% range is used


def test_seeded_same_size_and_different_per_seed():
    crop, positive = CropSynthesizer(), _gradient()
    a, b = crop.synthesize("ignored", positive, seed=3), crop.synthesize("", positive, seed=3)
    c = crop.synthesize("ignored", positive, seed=0)
    assert a.ok and a.image.size == positive.size and a.image.mode == "RGB"
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_zero_fraction_keeps_the_image():
    positive = _gradient()
    negative = CropSynthesizer(max_fraction=0.0).synthesize("", positive, seed=1)
    assert np.array_equal(np.asarray(negative.image), np.asarray(positive))


def test_bad_input_is_a_failed_value_and_bad_config_raises():
    crop = CropSynthesizer()
    negative = crop.synthesize("", None, seed=0)
    assert negative.image is None and "crop failed" in negative.error and crop.failures == 1
    with pytest.raises(ValueError):
        CropSynthesizer(max_fraction=1.5)
