"""Tiny randomly initialised VLMs of the real architectures, built in-process with no download.

Used by the built-in world's model, the benchmarks and the tests: a LLaVA (CLIP vision tower + Llama decoder)
with a locally built word-level tokenizer and a processor with a chat template. It loads and runs through
exactly the same code as `llava-hf/llava-1.5-7b-hf` would. (The tests build tiny Qwen2-VL / Qwen2.5-VL models
the same way, in tests/tiny_qwen.py.)
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

WORDS = (
    "a an the is are there of in on and with no yes not what color how many left right above below "
    "red green blue yellow black white cat dog cube ball tree car house two three one image describe "
    "this picture small big , . ?"
).split()

# LLaVA-1.5's conversation format ("USER: <image> question ASSISTANT: answer </s>"), for string or list contents;
# the built-in world's model uses it too.
LLAVA_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}USER: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %} "
    "{% else %}ASSISTANT: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{{ m['content'][0]['text'] }}{% endif %} </s> "
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def word_tokenizer(specials: list[str], words=WORDS, **special_map) -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<pad>", "<unk>", *specials, *words]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", **special_map)
    return fast


def llava(
    tokenizer,
    image_size: int,
    patch_size: int,
    vision_hidden: int,
    text_hidden: int,
    vision_layers: int = 2,
    text_layers: int = 2,
    heads: int = 2,
    mlp_ratio: tuple[int, int] = (2, 2),
    max_positions: int = 512,
    tie_embeddings: bool = False,
    seed: int = 0,
):
    """A randomly initialised `LlavaForConditionalGeneration` (CLIP vision tower + Llama decoder) over `tokenizer`
    and its `LlavaProcessor` (PIL image processor, LLaVA-1.5 chat template); the one LLaVA builder of ovip,
    used by the tests' tiny model and by the built-in world's base model. `mlp_ratio`: (vision, text) MLP widths
    as multiples of the hidden sizes."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=mlp_ratio[0] * vision_hidden,
        num_hidden_layers=vision_layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=mlp_ratio[1] * text_hidden,
        num_hidden_layers=text_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    _set_generation_ids(model, tokenizer)
    return model, processor


def tiny_llava(image_size: int = 32, patch_size: int = 8, hidden: int = 32, seed: int = 0):
    """A 2-layer LLaVA (CLIP-style vision tower + Llama-style decoder) and its processor."""
    tokenizer = word_tokenizer(
        ["<s>", "</s>", "<image>", "USER:", "ASSISTANT:"],
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    return llava(tokenizer, image_size, patch_size, hidden, hidden, seed=seed)


def _set_generation_ids(model, tokenizer) -> None:
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
