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
