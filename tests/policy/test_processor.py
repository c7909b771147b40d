"""Qwen2-VL / Qwen2.5-VL folders load through `Policy.from_pretrained` for images, with or without torchvision.

The folders are written as the hub ships them (image processor config, a video processor config, a chat
template), so loading them with plain `AutoProcessor` needs torchvision for the video half; `load_processor`
leaves that half out and gives the same tokens and the same log-probs as the processor built in-process.
"""

import json

import pytest
import torch
from PIL import Image
from tiny_qwen import tiny_qwen2_5_vl, tiny_qwen2_vl
from transformers.utils import is_torchvision_available

from ovip.policy.batch import Condition
from ovip.policy.logprobs import sequence_logps
from ovip.policy.model import Policy
from ovip.policy.processor import load_processor
from ovip.policy.tiny import tiny_llava

COND = [Condition(Image.new("RGB", (40, 30), (200, 10, 10)), "is there a red cube ?", "yes , a red cube .")]


def save_hub_style(build, folder):
    """Save a tiny model as a hub folder, adding the video-processor config that real Qwen folders carry."""
    model, processor = build()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    config = json.loads((folder / "processor_config.json").read_text())
    video = {k: v for k, v in config["image_processor"].items() if k != "image_processor_type"}
    video["video_processor_type"] = "Qwen2VLVideoProcessor"
    (folder / "video_preprocessor_config.json").write_text(json.dumps(video))
    config["video_processor"] = video
    (folder / "processor_config.json").write_text(json.dumps(config))
    return model, processor


@pytest.mark.parametrize("build", [tiny_qwen2_vl, tiny_qwen2_5_vl], ids=["qwen2_vl", "qwen2_5_vl"])
def test_qwen_folder_loads_for_images_and_matches_in_process(build, tmp_path):
    model, processor = save_hub_style(build, tmp_path)
    if not is_torchvision_available():  # the failure this module exists for
        from transformers import AutoProcessor

        with pytest.raises(ImportError, match="Torchvision"):
            AutoProcessor.from_pretrained(tmp_path)
    policy = Policy.from_pretrained(str(tmp_path), finetune="none")
    assert type(policy.processor).__name__ == type(processor).__mro__[1].__name__  # e.g. Qwen2_5_VLProcessor
    assert policy.processor.chat_template == processor.chat_template
    with torch.no_grad():
        want = sequence_logps(model, processor, COND).logps
        got = sequence_logps(policy.model, policy.processor, COND).logps
    torch.testing.assert_close(got, want)


def test_saved_image_only_processor_names_the_upstream_class(tmp_path):
    """A folder saved from the image-only processor is an ordinary Qwen folder (loads with AutoProcessor
    wherever torchvision is installed)."""
    _, processor = tiny_qwen2_5_vl()
    processor.save_pretrained(tmp_path)
    assert (
        json.loads((tmp_path / "processor_config.json").read_text())["processor_class"]
        == "Qwen2_5_VLProcessor"
    )


def test_processors_without_a_video_half_load_unchanged(tmp_path):
    model, processor = tiny_llava()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert type(load_processor(tmp_path)) is type(processor)


@pytest.mark.parametrize(
    "path, message",
    [
        ("/nonexistent/model", "model /nonexistent/model: no such folder"),
        ("./not-here", "model ./not-here: no such folder"),
    ],
)
def test_missing_local_model_is_one_line(path, message):
    with pytest.raises(FileNotFoundError) as err:
        Policy.from_pretrained(path)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
