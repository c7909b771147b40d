"""Tiny randomly initialised VLMs of the real architectures, built in-process with no download.

Used by the tests, the benchmarks and offline smoke runs of the real code path: a LLaVA (CLIP vision tower +
Llama decoder), a Qwen2-VL and a Qwen2.5-VL, each with a locally built word-level tokenizer and a processor with a chat
template. They load and run through exactly the same code as `llava-hf/llava-1.5-7b-hf`,
`Qwen/Qwen2-VL-2B-Instruct` or `Qwen/Qwen2.5-VL-3B-Instruct` would.
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

QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|> <|image_pad|> <|vision_end|> "
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant{% endif %}"
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


QWEN_SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|endoftext|>",
    "user",
    "assistant",
]


def _tiny_qwen(version: str, hidden: int, seed: int):
    """Shared body of the Qwen2-VL / Qwen2.5-VL builders: the tokenizer, processor and config ids are the same;
    the vision tower differs (Qwen2.5-VL: SwiGLU blocks with windowed attention and an output projection)."""
    import transformers
    from transformers import Qwen2VLImageProcessorPil

    from ovip.policy.processor import image_only

    prefix = "Qwen2VL" if version == "2" else "Qwen2_5_VL"
    tokenizer = word_tokenizer(QWEN_SPECIALS, eos_token="<|im_end|>")
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=16 * 16, max_pixels=32 * 32, patch_size=8, merge_size=2, temporal_patch_size=2
    )
    # No video processor: Qwen's needs torchvision; `load_processor` loads a saved folder the same way.
    processor = image_only(getattr(transformers, f"{prefix}Processor"))(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_TEMPLATE
    )
    ids = tokenizer.convert_tokens_to_ids
    vision = dict(
        depth=2,
        hidden_size=hidden,
        num_heads=2,
        patch_size=8,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_channels=3,
    )
    if version == "2":
        vision.update(embed_dim=hidden, mlp_ratio=2)
    else:
        vision.update(
            intermediate_size=2 * hidden, out_hidden_size=hidden, window_size=16, fullatt_block_indexes=[1]
        )
    config = getattr(transformers, f"{prefix}Config")(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=ids("<|im_end|>"),
            bos_token_id=None,
        ),
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = getattr(transformers, f"{prefix}ForConditionalGeneration")(config).eval()
    _set_generation_ids(model, tokenizer)
    return model, processor


def tiny_qwen2_vl(hidden: int = 32, seed: int = 0):
    """A 2-layer Qwen2-VL (ViT with 2x2 patch merger + Qwen2 decoder with M-RoPE) and its processor."""
    return _tiny_qwen("2", hidden, seed)


def tiny_qwen2_5_vl(hidden: int = 32, seed: int = 0):
    """A 2-layer Qwen2.5-VL (windowed-attention ViT, one full-attention block, + Qwen2 decoder with M-RoPE)."""
    return _tiny_qwen("2.5", hidden, seed)


def _set_generation_ids(model, tokenizer) -> None:
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
