"""Tests for ovip.negatives.random_sample: another dataset image, seeded, never the positive when avoidable."""

import numpy as np
from PIL import Image

from ovip.negatives.random_sample import RandomImageSynthesizer


def _write(tmp_path, name, value):
    path = tmp_path / name
    Image.new("RGB", (8, 8), (value, value, value)).save(path)
    return str(path)


def test_never_returns_the_positive_and_is_seeded(tmp_path):
    paths = [_write(tmp_path, f"{i}.png", 40 * i) for i in range(3)]
    sampler = RandomImageSynthesizer(paths)
    with Image.open(paths[1]) as positive:  # opened from its file: same path is skipped
        picks = [sampler.synthesize("", positive, seed=s).path for s in range(30)]
        again = [sampler.synthesize("", positive, seed=s).path for s in range(30)]
    assert paths[1] not in picks and set(picks) == {paths[0], paths[2]}
    assert picks == again
    in_memory = Image.new("RGB", (8, 8), (0, 0, 0))  # same pixels as 0.png, no file name
    assert all(sampler.synthesize("", in_memory, seed=s).path != paths[0] for s in range(20))


def test_returns_the_positive_only_when_unavoidable_and_skips_broken_files(tmp_path):
    only = _write(tmp_path, "only.png", 10)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    sampler = RandomImageSynthesizer([str(broken), only])
    with Image.open(only) as positive:
        negative = sampler.synthesize("", positive, seed=0)
    assert negative.ok and negative.path == only
    assert np.asarray(negative.image).mean() == 10


def test_nothing_to_sample_is_a_failed_value(tmp_path):
    sampler = RandomImageSynthesizer([])
    assert sampler.synthesize("", Image.new("RGB", (4, 4)), seed=0).error == "no images to sample from"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    negative = RandomImageSynthesizer([broken]).synthesize("", Image.new("RGB", (4, 4)), seed=0)
    assert negative.image is None and "no readable image" in negative.error
