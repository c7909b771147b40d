"""Tests for ovip.negatives.store: content-addressed, write-once PNG store."""

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ovip.negatives.store import ImageStore


def _image(value: int) -> Image.Image:
    rng = np.random.default_rng(value)
    return Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))


def test_path_is_the_sha256_of_the_png_bytes(tmp_path):
    store = ImageStore(tmp_path / "images")
    image = _image(0)
    path = Path(store.put(image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert path.name == hashlib.sha256(buffer.getvalue()).hexdigest() + ".png"
    assert path.parent == tmp_path / "images"
    assert path.read_bytes() == buffer.getvalue()


def test_same_image_is_stored_once_and_roundtrips(tmp_path):
    store = ImageStore(tmp_path)
    first = store.put(_image(1))
    mtime = Path(first).stat().st_mtime_ns
    assert store.put(_image(1).copy()) == first
    assert Path(first).stat().st_mtime_ns == mtime  # not rewritten
    other = store.put(_image(2))
    assert other != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(first).name, Path(other).name]
    )  # no temp files
    assert np.array_equal(np.asarray(store.get(first)), np.asarray(_image(1)))
    assert np.array_equal(np.asarray(store.get(Path(other).name)), np.asarray(_image(2)))
    assert first in store and Path(other).name in store and "missing.png" not in store
