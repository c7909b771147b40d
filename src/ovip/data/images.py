"""Image references in data files, lazy image loading and image validation.

A record refers to its image by a path (relative to the data file, or absolute) or, as in RLAIF-V parquet and
Hugging Face `datasets` exports, by `{"bytes": ..., "path": ...}`. Paths are kept on `Example.image_path` and
opened when needed; embedded bytes are opened lazily (`Image.open` on a buffer reads only the header), so a
large parquet file does not decode every image at load time.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ovip.records import Example


def resolve_image(ref, base_dir: Path) -> tuple[Image.Image | None, str | None, str | None]:
    """(image, image_path, error) for an image reference; a list means its first element."""
    if isinstance(ref, (list, tuple)):
        if not ref:
            return None, None, "no image"
        ref = ref[0]
    if isinstance(ref, dict):
        data, path = ref.get("bytes"), ref.get("path")
        if data:
            try:
                return Image.open(io.BytesIO(data)), None, None
            except Exception as e:
                return None, None, f"cannot decode image bytes: {type(e).__name__}: {e}"
        ref = path
    if isinstance(ref, str) and ref.strip():
        path = Path(ref).expanduser()
        return None, str(path if path.is_absolute() else (base_dir / path).resolve()), None
    return None, None, "no image"


def load_image(example: Example) -> Image.Image:
    """The example's image as RGB, from memory or from `image_path`. Raises when there is none (run the check)."""
    if example.image is not None:
        return _fresh(example.image).convert("RGB")
    if example.image_path:
        with Image.open(example.image_path) as image:
            return image.convert("RGB")
    raise ValueError(f"example {example.id!r} has no image: {example.meta.get('image_error', 'no image')}")


def image_problem(example: Example) -> str | None:
    """Why the example's image is unusable (missing, unreadable, corrupt or truncated), or None if it is fine.

    Each image is verified (`Image.verify`, which checks PNG checksums) and then fully decoded from a fresh
    handle (which catches truncated files), without keeping the decoded pixels.
    """
    if example.meta.get("image_error"):
        return example.meta["image_error"]
    if example.image is not None:
        if isinstance(getattr(example.image, "fp", None), io.BytesIO):
            return _decode_problem(lambda: _fresh(example.image))
        try:
            example.image.load()
        except Exception as e:
            return f"corrupt image: {type(e).__name__}: {e}"
        return None
    if not example.image_path:
        return "no image"
    if not Path(example.image_path).is_file():
        return f"image file not found: {example.image_path}"
    return _decode_problem(lambda: Image.open(example.image_path))


def _fresh(image: Image.Image) -> Image.Image:
    """A new lazily opened copy of an image opened from an in-memory buffer, else the image itself.

    Decoding the copy leaves the Example's image undecoded, so a data set of embedded images (RLAIF-V) stays
    at its encoded size in memory however often it is read.
    """
    fp = getattr(image, "fp", None)
    return Image.open(io.BytesIO(fp.getvalue())) if isinstance(fp, io.BytesIO) else image


def _decode_problem(open_image) -> str | None:
    """Verify, then decode from a fresh handle (verify() leaves an image unusable)."""
    try:
        with open_image() as image:
            image.verify()
        with open_image() as image:
            image.load()
            if image.width < 1 or image.height < 1:
                return "empty image"
    except Exception as e:
        return f"corrupt image: {type(e).__name__}: {e}"
    return None
