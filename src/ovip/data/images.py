"""Image references in data files, lazy image loading and image validation.

A record refers to its image by a path (relative to the data file, or absolute) or, as in RLAIF-V parquet and
Hugging Face `datasets` exports, by `{"bytes": ..., "path": ...}`. Paths are kept on `Example.image_path` and
opened when needed; embedded bytes are opened lazily (`Image.open` on a buffer reads only the header), so a
large parquet file does not decode every image at load time. Every read checks the header's size against a
pixel limit before decoding and, given the policy's processor, downscales what the processor would throw
away anyway.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

from PIL import Image

from ovip.data.paths import file_problem, shown
from ovip.records import Example

# The default of `train.max_image_pixels`: 50 Mpx is a 8660x5770 photo, 150 MB once decoded as RGB.
MAX_PIXELS = 50_000_000


class ImageTooLarge(ValueError):
    """An image above the pixel limit, found from its header before decoding."""


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
        if not path.is_absolute():
            path = base_dir / path
            try:
                path = path.resolve()
            except (OSError, RuntimeError):  # a name too long, a symlink loop: the check names the problem
                pass
        return None, str(path), None
    return None, None, "no image"


# Where the pixel limit of training data comes from, for the messages that cite it.
PIXEL_LIMIT_SOURCE = "train.max_image_pixels, data check --max-pixels"


def open_image(source, max_pixels: int = MAX_PIXELS, limit_source: str = PIXEL_LIMIT_SOURCE) -> Image.Image:
    """`Image.open` (which reads the header only) and the pixel limit, checked before any pixel is decoded.

    A 12000x12000 PNG compresses to 140 kB and decodes to 432 MB (RGB), more in the processor's float copies;
    PIL's own guard only warns below 2 x 89 Mpx. The limit is ours (`train.max_image_pixels`), so PIL's
    warning is silenced here and its error, for images beyond twice its limit, becomes ours. `limit_source`
    says in the error where `max_pixels` comes from.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(source)
        except Image.DecompressionBombError as e:
            raise ImageTooLarge(f"image too large: {e}") from None
    _check_pixels(image, max_pixels, limit_source)
    return image


def load_image(example: Example, max_pixels: int = MAX_PIXELS, processor=None) -> Image.Image:
    """The example's image as RGB, from memory or from `image_path`. Raises when there is none (run the check)
    or when it has more than `max_pixels` pixels (`ImageTooLarge`, before decoding).

    With a `processor`, an image much larger than the processor uses is downscaled here (`load_scale`), so the
    processor never holds the full-size copy; JPEGs are decoded straight at the reduced scale (`draft`).
    """
    if example.image is not None and not isinstance(getattr(example.image, "fp", None), io.BytesIO):
        _check_pixels(example.image, max_pixels)
        return _fit(example.image.convert("RGB"), processor)
    if example.image is not None:
        source = io.BytesIO(example.image.fp.getvalue())
    elif example.image_path:
        source = example.image_path
    else:
        raise ValueError(
            f"example {example.id!r} has no image: {example.meta.get('image_error', 'no image')}"
        )
    with open_image(source, max_pixels) as image:
        target = _scaled(image.size, load_scale(processor, image.size))
        if target != image.size:
            image.draft("RGB", target)  # JPEG only: DCT scaling to the smallest scale >= target
        return _fit(image.convert("RGB"), processor)


def load_scale(processor, size: tuple[int, int]) -> float:
    """The factor (<= 1) that brings an image of `size` down to twice, per side, what `processor` keeps.

    CLIP-style processors (LLaVA-1.5) resize the shorter side to `size["shortest_edge"]` (or to a fixed
    height x width); Qwen2-VL's keep at most `size["longest_edge"]` pixels (its `max_pixels`). Keeping twice
    that resolution leaves the processor's own resize to decide what the model sees. Unknown processors and
    `processor=None`: 1 (no downscaling; the pixel limit still holds).
    """
    if processor is None:
        return 1.0
    ip = getattr(processor, "image_processor", processor)
    spec = getattr(ip, "size", None) or {}
    get = spec.get if isinstance(spec, dict) else (lambda key: getattr(spec, key, None))
    width, height = size
    if getattr(ip, "merge_size", None):  # Qwen2-VL family: the size fields are pixel counts
        max_pixels = get("longest_edge") or getattr(ip, "max_pixels", None)
        return min(1.0, math.sqrt(4 * max_pixels / (width * height))) if max_pixels else 1.0
    side = get("shortest_edge") or max(get("height") or 0, get("width") or 0)
    return min(1.0, 2 * side / min(width, height)) if side else 1.0


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return size if scale >= 1 else (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


def _fit(image: Image.Image, processor) -> Image.Image:
    target = _scaled(image.size, load_scale(processor, image.size))
    if target[0] >= image.width:
        return image
    return image.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)


def _check_pixels(image: Image.Image, max_pixels: int, limit_source: str = PIXEL_LIMIT_SOURCE) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image of {width}x{height} = {width * height:,} pixels > the pixel limit "
            f"{max_pixels:,} ({limit_source})"
        )


def image_problem(example: Example, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why the example's image is unusable (missing, not a regular file, unreadable, over the pixel limit,
    corrupt or truncated), or None if it is fine.

    The size is read from the header first; an image within the limit is verified (`Image.verify`, which
    checks PNG checksums) and then fully decoded from a fresh handle (which catches truncated files), without
    keeping the decoded pixels.
    """
    if example.meta.get("image_error"):
        return example.meta["image_error"]
    if example.image is not None:
        if isinstance(getattr(example.image, "fp", None), io.BytesIO):
            return _decode_problem(lambda: _fresh(example.image), max_pixels)
        try:
            _check_pixels(example.image, max_pixels)
            example.image.load()
        except ImageTooLarge as e:
            return str(e)
        except Exception as e:
            return f"corrupt image: {type(e).__name__}: {e}"
        return None
    if not example.image_path:
        return "no image"
    problem = file_problem(example.image_path)  # a FIFO would block the decoder, /dev/zero never end
    if problem:
        return f"image file {problem}: {shown(example.image_path)}"
    return _decode_problem(lambda: Image.open(example.image_path), max_pixels)


def _fresh(image: Image.Image) -> Image.Image:
    """A new lazily opened copy of an image opened from an in-memory buffer, else the image itself.

    Decoding the copy leaves the Example's image undecoded, so a data set of embedded images (RLAIF-V) stays
    at its encoded size in memory however often it is read.
    """
    fp = getattr(image, "fp", None)
    return Image.open(io.BytesIO(fp.getvalue())) if isinstance(fp, io.BytesIO) else image


def _decode_problem(opener, max_pixels: int) -> str | None:
    """Header size first, then verify, then decode from a fresh handle (verify() leaves an image unusable)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with opener() as image:
                _check_pixels(image, max_pixels)
                image.verify()
            with opener() as image:
                image.load()
                if image.width < 1 or image.height < 1:
                    return "empty image"
    except ImageTooLarge as e:
        return str(e)
    except Image.DecompressionBombError as e:
        return f"image too large: {e}"
    except OSError as e:
        if e.errno is not None:  # the OS refused the read (PIL's own errors carry no errno)
            return f"cannot read image file: {e.strerror}"
        return f"corrupt image: {type(e).__name__}: {e}"
    except Exception as e:
        return f"corrupt image: {type(e).__name__}: {e}"
    return None
