"""Content-addressed PNG store for negative images (each image stored once, reused by policy and reference).

The authors write each FLUX image to `images/<sha256>.png` (`annotations/annotate.py`), hashing the time and
the prompt. We hash the PNG bytes instead, so the same image is stored once, its path is a pure function of its
pixels, and a resumed run finds the files it wrote before. Writes are atomic (temporary file + `os.replace`),
so a crash never leaves a truncated PNG under a valid name, and concurrent writers of the same image agree.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image


class ImageStore:
    """PNG files under `root`, named by the sha256 of their bytes: `root/<sha256>.png`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, image: Image.Image) -> str:
        """Store `image` as PNG (once) and return its path (a string, under `root`)."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        path = self.root / f"{hashlib.sha256(data).hexdigest()}.png"
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".png")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return str(path)

    def get(self, path: str | os.PathLike) -> Image.Image:
        """The image at `path` (absolute, or a file name relative to `root`), fully loaded into memory."""
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            path = self.root / path
        with Image.open(path) as image:
            image.load()
            return image

    def __contains__(self, path: str | os.PathLike) -> bool:
        path = Path(path)
        return (path if path.is_absolute() else self.root / path).exists()


class ImageCache:
    """The loaded images of a run's buffer, by stored path: experiences keep paths (they are checkpointed as
    JSON), their forward passes need pixels. Images enter as experiences are made (`put`), are read again from
    `store` after a resume (`ensure`; from the store of this run folder when the folder has moved since), and
    leave when no buffer item refers to them any more (`keep_only`), so the cache is bounded by the buffer."""

    def __init__(self, store: ImageStore, max_pixels: int, processor=None):
        self.store, self.max_pixels, self.processor = store, max_pixels, processor
        self.images: dict[str, Image.Image] = {}

    def __getitem__(self, path: str) -> Image.Image:
        return self.images[path]

    def put(self, path: str, image: Image.Image) -> None:
        self.images[path] = image

    def ensure(self, paths) -> None:
        from ovip.data.images import load_image
        from ovip.records import Example

        for path in paths:
            if path and path not in self.images:  # "": an experience without a negative image
                found = path if Path(path).exists() else str(self.store.root / Path(path).name)
                record = Example(id=path, query="", reference="", image_path=found)
                self.images[path] = load_image(record, self.max_pixels, self.processor)

    def keep_only(self, paths: set[str]) -> None:
        self.images = {p: im for p, im in self.images.items() if p in paths}
