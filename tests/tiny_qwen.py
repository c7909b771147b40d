"""Tiny randomly initialised Qwen2-VL and Qwen2.5-VL, built in-process with no download, for the tests: they
load and run through exactly the same code as `Qwen/Qwen2-VL-2B-Instruct` or `Qwen/Qwen2.5-VL-3B-Instruct`."""

from __future__ import annotations

import torch

from ovip.policy.tiny import _set_generation_ids, word_tokenizer

QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|> <|image_pad|> <|vision_end|> "
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant{% endif %}"
)

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
