"""The tiny world VLM saves and loads like a hub model (Auto classes) and speaks the LLaVA-1.5 template."""

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from ovip.config.world import WorldConfig
from ovip.policy.batch import Condition, prompt_text
from ovip.policy.logprobs import sequence_logps
from ovip.policy.rollout import sample_answers
from ovip.world.model import build, load, save
from ovip.world.render import render
from ovip.world.scene import sample_scene

TINY = WorldConfig(
    model={"vision_hidden": 16, "vision_layers": 1, "text_hidden": 32, "text_layers": 2, "heads": 2}
)


def test_chat_template_is_llava_like():
    _, processor = build(TINY)
    user = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe this image."}]}
    ]
    assert (
        processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        == "USER: <image> describe this image. ASSISTANT:"
    )
    text_only = [{"role": "user", "content": [{"type": "text", "text": "is there a tree?"}]}]
    assert (
        processor.apply_chat_template(text_only, add_generation_prompt=True, tokenize=False)
        == "USER: is there a tree? ASSISTANT:"
    )
    full = user + [{"role": "assistant", "content": [{"type": "text", "text": "a red ball."}]}]
    assert processor.apply_chat_template(full, tokenize=False).startswith(
        "USER: <image> describe this image. ASSISTANT: a red ball. </s>"
    )
    assert prompt_text(processor, "describe this image.", True).endswith("ASSISTANT:")


def test_tokenizer_is_word_level_over_the_lexicon():
    _, processor = build(TINY)
    tok = processor.tokenizer
    ids = tok("Describe a red ZEBRA.")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "describe", "a", "red", "<unk>", "."]
    assert (
        tok.decode(tok("a red ball, two stars.", add_special_tokens=False)["input_ids"])
        == "a red ball, two stars."
    )


def test_save_load_roundtrip_through_auto_classes(tmp_path):
    model, processor = build(TINY)
    model.eval()
    save(model, processor, tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    proc2 = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "LlavaForConditionalGeneration"
    scene = sample_scene(TINY, 0, "biased")
    image = render(scene, 0, TINY.image_size)
    conds = [
        Condition(image, "describe this image.", "a red ball."),
        Condition(None, "is there a ball?", "yes."),
    ]
    with torch.no_grad():
        a = sequence_logps(model, processor, conds)
        b = sequence_logps(loaded, proc2, conds)
    assert torch.allclose(a.logps, b.logps, atol=1e-5)
    assert a.token_counts.tolist() == [5, 3]  # "a red ball ." + </s>; "yes ." + </s>
    n_image_tokens = (TINY.image_size // TINY.model.patch_size) ** 2
    enc = proc2(text=[prompt_text(proc2, "describe this image.", True)], images=[image], return_tensors="pt")
    assert int((enc["input_ids"] == loaded.config.image_token_id).sum()) == n_image_tokens
    m3, _ = load(tmp_path)
    assert type(m3) is type(loaded)


def test_batched_generation_returns_one_text_per_query():
    model, processor = build(TINY)
    model.eval()
    images = [render(sample_scene(TINY, s, "biased"), s, TINY.image_size) for s in range(3)]
    out = sample_answers(
        model, processor, images, ["describe this image."] * 3, k=1, max_new_tokens=5, do_sample=False
    )
    assert len(out) == 3 and all(len(g) == 1 and isinstance(g[0].text, str) for g in out)
    sampled = sample_answers(
        model, processor, images, ["what is in this image?"] * 3, k=2, max_new_tokens=5, seeds=[0, 1, 2]
    )
    assert len(sampled) == 3 and all(len(g) == 2 for g in sampled)
