"""The world's tiny base VLM: a LLaVA (CLIP vision tower + Llama decoder) built from a config, no download.

The tokenizer is word-level over the world lexicon (`text.lexicon`), lowercasing, with a WordPiece decoder
only for its punctuation clean-up ("ball ." -> "ball."). The processor is an ordinary `LlavaProcessor` with
the PIL image processor and a LLaVA-1.5-like chat template:

    USER: <image> {query} ASSISTANT: {response} </s>

Saved with `save_pretrained`, the model and processor load with `AutoModelForImageTextToText` /
`AutoProcessor` exactly like `llava-hf/llava-1.5-7b-hf`, so every other part of ovip treats it as a hub model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from ovip.world.config import WorldConfig
from ovip.world.text import lexicon

SPECIALS = ("<pad>", "<unk>", "<s>", "</s>", "<image>")
CHAT_WORDS = ("user", "assistant", ":")

CHAT_TEMPLATE = (
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


def build_tokenizer(cfg: WorldConfig) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the world lexicon; unknown words map to <unk>, <s> is prepended."""
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*SPECIALS, *CHAT_WORDS, *lexicon(cfg.categories, cfg.colors)]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(SPECIALS))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def build_processor(cfg: WorldConfig) -> LlavaProcessor:
    size = cfg.image_size
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=build_tokenizer(cfg), patch_size=cfg.model.patch_size,
        num_additional_image_tokens=1, vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
    )


def build_model(cfg: WorldConfig, processor: LlavaProcessor) -> LlavaForConditionalGeneration:
    """A randomly initialised tiny LLaVA whose shapes come from `cfg.model` (seeded by `cfg.model.init_seed`)."""
    m, tok = cfg.model, processor.tokenizer
    vision = CLIPVisionConfig(
        hidden_size=m.vision_hidden, intermediate_size=4 * m.vision_hidden, num_hidden_layers=m.vision_layers,
        num_attention_heads=m.heads, image_size=cfg.image_size, patch_size=m.patch_size,
    )
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=m.text_hidden, intermediate_size=3 * m.text_hidden,
        num_hidden_layers=m.text_layers, num_attention_heads=m.heads, num_key_value_heads=m.heads,
        max_position_embeddings=256, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(m.init_seed)
    model = LlavaForConditionalGeneration(config)
    gen = model.generation_config
    gen.pad_token_id, gen.eos_token_id, gen.bos_token_id = tok.pad_token_id, tok.eos_token_id, tok.bos_token_id
    gen.max_new_tokens = 40
    return model


def build(cfg: WorldConfig) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    processor = build_processor(cfg)
    return build_model(cfg, processor), processor


def save(model, processor, path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def load(path: str | Path):
    """Load a saved world model the way any hub model is loaded (Auto classes)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)
