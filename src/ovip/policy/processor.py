"""Load a model's processor (tokenizer + image processor + chat template) for image-and-text use.

OViP only ever shows the policy images (paper §3), so a processor's video half is never used. Qwen2-VL and
Qwen2.5-VL processors nevertheless build a video processor on load, and theirs requires torchvision; without
torchvision `AutoProcessor.from_pretrained` fails ("Qwen2VLVideoProcessor requires the Torchvision library")
even for image-only work. `load_processor` is the one way ovip loads a processor: `AutoProcessor` when nothing
is missing, otherwise the same processor class with its video processor left out (`image_only`). Image
processors themselves fall back to their PIL implementations without torchvision.
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def image_only(processor_class: type) -> type:
    """`processor_class` without its `video_processor` attribute: nothing video is loaded, saved or checked.

    The subclass keeps the parent's name, so a folder it saves names the upstream class (`Qwen2VLProcessor`)
    and loads with plain `AutoProcessor` wherever torchvision is installed. Passing videos to it is an error
    of the parent's code (it has no `video_processor`); images and text behave exactly as the parent's.
    """

    class ImageOnly(processor_class):
        @classmethod
        def get_attributes(cls):
            return [a for a in super().get_attributes() if a != "video_processor"]

    ImageOnly.__name__ = ImageOnly.__qualname__ = processor_class.__name__
    ImageOnly.__doc__ = f"{processor_class.__name__} for images and text only (no video processor)."
    return ImageOnly


def needs_image_only(processor_class: type | None) -> bool:
    """True when loading `processor_class` as is would build a video processor that cannot be built here."""
    from transformers.utils import is_torchvision_available

    return (
        processor_class is not None
        and not is_torchvision_available()
        and "video_processor" in processor_class.get_attributes()
    )


def processor_class_for(path: str | Path) -> type | None:
    """The processor class `AutoProcessor` picks for the model at `path`, from its config's model_type (None for
    a folder that holds a processor but no model config: `AutoProcessor` then reads the processor's own files)."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    if Path(path).is_dir() and not (Path(path) / "config.json").exists():
        return None
    model_type = getattr(AutoConfig.from_pretrained(path), "model_type", None)
    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    return getattr(transformers, name, None) if isinstance(name, str) else None


def load_processor(path: str | Path):
    """The processor of the model at `path` (a local folder or hub id), video half left out where needed.

    The hub client's errors (an unknown id, no network) are several lines of OSError; they become one
    FileNotFoundError line here."""
    from transformers import AutoProcessor

    try:
        cls = processor_class_for(path)
        if needs_image_only(cls):
            return image_only(cls).from_pretrained(path)
        return AutoProcessor.from_pretrained(path)
    except OSError as e:
        raise FileNotFoundError(f"cannot load the processor of {str(path)!r}: {first_line(e)}") from None


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (the hub's errors add advice on further lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
