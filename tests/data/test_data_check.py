"""Tests for ovip.data.check: every bad record reported by id, and prompts that would cut image tokens."""

import json

import pytest
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlavaProcessor, PreTrainedTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ovip.data.check import check_examples, prompt_length
from ovip.data.load import load_examples
from ovip.records import Example


def test_reports_each_bad_record_by_id(tmp_path):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "good.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "full.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "full.png").read_bytes()[:-20])
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    rows = [
        {"id": "good", "image": "good.png", "query": "q", "reference": "r"},
        {"id": "missing", "image": "nowhere.png", "query": "q", "reference": "r"},
        {"id": "truncated", "image": "truncated.png", "query": "q", "reference": "r"},
        {"id": "garbage", "image": "garbage.png", "query": "q", "reference": "r"},
        {"id": "blank", "image": "good.png", "query": "  ", "reference": ""},
        {"id": "good", "image": "good.png", "query": "q2", "reference": "r2"},
        {"id": "noimage", "query": "q", "reference": "r"},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{oops\n")
    report = check_examples(load_examples(path))
    assert not report.ok and report.n_examples == 8
    got = {(example_id, name) for example_id, name, _ in report.bad}
    assert got == {
        ("missing", "image"), ("truncated", "image"), ("garbage", "image"), ("blank", "query"),
        ("blank", "reference"), ("good", "id"), ("noimage", "image"), ("data.jsonl:7", "record"),
    }  # fmt: skip
    assert report.bad_ids == {"missing", "truncated", "garbage", "blank", "good", "noimage", "data.jsonl:7"}
    text = report.format()
    assert text.startswith("8 examples, 8 problems in 7 examples:")
    assert "truncated  [image]  corrupt image" in text and "duplicate id (first used by record 0)" in text
    assert report.format(limit=2).endswith("... and 6 more")
    assert check_examples(load_examples(path)[:1]).format() == "1 examples, no problems"


@pytest.fixture(scope="module")
def tiny_llava_processor():
    """LLaVA processor: 32x32 images, patch 8 -> 16 image tokens; word-level tokenizer; a LLaVA-1.5-like template."""
    words = ["<pad>", "<unk>", "<image>", "USER:", "ASSISTANT:", "what", "is", "this", "?"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    template = (
        "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
    )
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        chat_template=template, image_token="<image>", num_additional_image_tokens=1,
    )  # fmt: skip


def test_prompt_that_would_cut_image_tokens(tmp_path, tiny_llava_processor):
    Image.new("RGB", (40, 30)).save(tmp_path / "img.png")
    example = Example(id="e1", query="what is this ?", reference="r", image_path=str(tmp_path / "img.png"))
    # "USER:" + 16 image tokens + 4 query words + "ASSISTANT:" = 22 tokens
    assert prompt_length(example, tiny_llava_processor) == 22
    assert check_examples([example], tiny_llava_processor, max_length=22).ok
    report = check_examples([example], tiny_llava_processor, max_length=21)
    ((example_id, name, message),) = report.bad
    assert (example_id, name) == ("e1", "length") and "22 tokens" in message and "image tokens" in message
    assert check_examples([example], tiny_llava_processor).ok  # no max_length: no length check
