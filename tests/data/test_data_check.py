"""Tests for ovip.data.check: every bad record reported by id, and prompts that would cut image tokens."""

import json
import subprocess
import sys

import pytest
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlavaProcessor, PreTrainedTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ovip.data.check import check_examples, prompt_length, scored_length
from ovip.data.images import ImageTooLarge, load_image, load_scale
from ovip.data.load import load_examples
from ovip.policy.batch import Condition, collate
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
    got = {(example_id, name) for example_id, name, *_ in report.bad}
    assert got == {
        ("missing", "image"), ("truncated", "image"), ("garbage", "image"), ("blank", "query"),
        ("blank", "reference"), ("good", "id"), ("noimage", "image"), ("data.jsonl:8", "record"),
    }  # fmt: skip
    assert report.bad_ids == {"missing", "truncated", "garbage", "blank", "good", "noimage", "data.jsonl:8"}
    # The duplicate "good" is at position 5 (line 6); position 0 (line 1), the first copy, is not a bad record.
    assert report.bad_indices == {1, 2, 3, 4, 5, 6, 7}
    text = report.format()
    assert text.startswith("8 examples, 8 problems in 7 examples:")
    assert "truncated  [image]  corrupt image" in text and "duplicate id (first used by data.jsonl:1)" in text
    assert "[record]  invalid JSON on line 8" in text and "(data.jsonl:8)" in text  # file and line
    assert report.format(limit=2).endswith("... and 6 more")
    assert check_examples(load_examples(path)[:1]).format() == "1 examples, no problems"


def test_an_invalid_first_copy_does_not_take_the_id(tmp_path):
    """Both copies of a repeated id used to be dropped when the first was invalid: its id was taken before its
    image was checked. Record numbers in messages count from 1, as the places do (it said "record 0" beside
    "data.jsonl:1")."""
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    rows = [
        {"id": "x", "image": "missing.png", "query": "q", "reference": "r"},
        {"id": "x", "image": "a.png", "query": "q", "reference": "r"},
        {"id": "x", "image": "a.png", "query": "q", "reference": "r"},
    ]
    for name in ("d.jsonl", "d.json"):
        path = tmp_path / name
        path.write_text(
            "".join(json.dumps(r) + "\n" for r in rows) if name == "d.jsonl" else json.dumps(rows)
        )
        report = check_examples(load_examples(path))
        assert report.bad_indices == {0, 2}  # the second copy, the first valid one, is kept
        first, third = (
            (f"{name}:1", f"{name}:3") if name == "d.jsonl" else (f"{name} record 1", f"{name} record 3")
        )
        assert [(p.field, p.source) for p in report.bad] == [("image", first), ("id", third)]
        second = "d.jsonl:2" if name == "d.jsonl" else "d.json record 2"
        assert report.bad[1].message == f"duplicate id (first used by {second})"
        assert [(r["record"], r["source"]) for r in report.records()] == [(1, first), (3, third)]
    unplaced = [Example(id="y", query="q", reference="r", image_path=str(tmp_path / "a.png"))] * 2
    assert check_examples(unplaced).bad[0].message == "duplicate id (first used by record 1)"


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
    # training scores prompt + " r" (the template has no assistant turn, so batch.collate appends the answer):
    # 22 + 1 = 23 tokens
    assert scored_length(example, tiny_llava_processor) == 23
    assert check_examples([example], tiny_llava_processor, max_length=23).ok
    report = check_examples([example], tiny_llava_processor, max_length=21)
    ((example_id, name, message, *_),) = report.bad
    assert (example_id, name) == ("e1", "length") and "22 tokens" in message and "image tokens" in message
    assert check_examples([example], tiny_llava_processor).ok  # no max_length: no length check


def test_a_reference_that_training_would_refuse(tmp_path, tiny_llava_processor):
    """The prompt fits, prompt + answer does not: training's collate raises on it mid-run, so the check
    reports it first."""
    Image.new("RGB", (40, 30)).save(tmp_path / "img.png")
    long_answer = " ".join(["this"] * 30)
    example = Example(
        id="e1", query="what is this ?", reference=long_answer, image_path=str(tmp_path / "img.png")
    )
    ((_, name, message, *_),) = check_examples([example], tiny_llava_processor, max_length=40).bad
    assert (
        name == "length" and "prompt + reference answer is 52 tokens (prompt 22) > max_length 40" in message
    )
    with pytest.raises(ValueError, match="52 tokens"):
        collate(
            tiny_llava_processor,
            [Condition(Image.open(tmp_path / "img.png"), example.query, long_answer)],
            max_length=40,
        )


def test_an_image_bomb_is_refused_from_its_header(tmp_path):
    """12000 x 12000 compresses to a few kB; PIL only warns below 179 Mpx and it used to pass the check."""
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")  # 1 bit per pixel: cheap to write here
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    example = Example(id="bomb", query="q", reference="r", image_path=str(tmp_path / "bomb.png"))
    ((_, name, message, *_),) = check_examples([example]).bad
    assert name == "image" and "12000x12000 = 144,000,000 pixels > the pixel limit 50,000,000" in message
    with pytest.raises(ImageTooLarge):
        load_image(example)
    assert check_examples([example], max_pixels=150_000_000).ok  # the limit is a setting
    assert check_examples([example], max_pixels=150_000_000).max_pixels == 150_000_000


@pytest.mark.parametrize("suffix", ["png", "jpeg"])
def test_load_image_downscales_to_what_the_processor_keeps(tmp_path, tiny_llava_processor, suffix):
    """The tiny processor resizes the shorter side to 32: a 2000x1000 image is loaded at 128x64 (twice 32 on
    the shorter side), JPEG through `draft`; small images are untouched; no processor, no downscaling."""
    Image.new("RGB", (2000, 1000), (200, 30, 30)).save(tmp_path / f"big.{suffix}")
    Image.new("RGB", (50, 40)).save(tmp_path / f"small.{suffix}")
    big = Example(id="b", query="q", reference="r", image_path=str(tmp_path / f"big.{suffix}"))
    small = Example(id="s", query="q", reference="r", image_path=str(tmp_path / f"small.{suffix}"))
    assert load_image(big, processor=tiny_llava_processor).size == (128, 64)
    assert load_image(small, processor=tiny_llava_processor).size == (50, 40)
    assert load_image(big).size == (2000, 1000)
    assert load_scale(tiny_llava_processor, (2000, 1000)) == 64 / 1000


def data_check(*args):
    return subprocess.run(
        [sys.executable, "-m", "ovip.cli", "data", "check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_refuses_unknown_flags_and_a_length_without_a_model(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"id": "a", "image": "a.png", "query": "q", "reference": "r"}) + "\n")
    out = data_check(path, "--max-lenght", "5")  # a typo used to print "no problems" and exit 0
    assert out.returncode == 2 and "unrecognized arguments: --max-lenght 5" in out.stderr
    out = data_check(path, "--max-length", "5")
    assert out.returncode == 2 and "--max-length needs --model" in out.stderr
    out = data_check(path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"{path}: jsonl format (detected); pixel limit 50,000,000 (--max-pixels; "
        "training: train.max_image_pixels)",
        "1 examples, no problems",
    ]
    out = data_check(path, "--max-pixels", "63")
    assert out.returncode == 1 and "8x8 = 64 pixels > the pixel limit 63" in out.stdout


def test_cli_checks_prompt_and_answer_with_the_model_processor(tmp_path, tiny_llava_processor):
    tiny_llava_processor.save_pretrained(tmp_path / "model")
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    path = tmp_path / "data.jsonl"
    rows = [
        {"id": "short", "image": "a.png", "query": "what is this ?", "reference": "this"},
        {"id": "long", "image": "a.png", "query": "what is this ?", "reference": " ".join(["this"] * 30)},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = data_check(path, "--model", tmp_path / "model", "--max-length", "40")
    assert out.returncode == 1, out.stderr
    assert "long  [length]  prompt + reference answer is 52 tokens (prompt 22) > max_length 40" in out.stdout
    assert "short" not in out.stdout
