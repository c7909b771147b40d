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

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast

from ovip.config.world import WorldConfig
from ovip.policy.tiny import llava
from ovip.world.text import lexicon

SPECIALS = ("<pad>", "<unk>", "<s>", "</s>", "<image>")
CHAT_WORDS = ("user", "assistant", ":")


def build_tokenizer(cfg: WorldConfig) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the world lexicon; unknown words map to <unk>, <s> is prepended."""
    vocab = {
        w: i
        for i, w in enumerate(dict.fromkeys([*SPECIALS, *CHAT_WORDS, *lexicon(cfg.categories, cfg.colors)]))
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def build(cfg: WorldConfig) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A randomly initialised tiny LLaVA whose shapes come from `cfg.model` (seeded by `cfg.model.init_seed`),
    and its processor (`ovip.policy.tiny.llava`, the one LLaVA builder)."""
    m = cfg.model
    model, processor = llava(
        build_tokenizer(cfg),
        cfg.image_size,
        m.patch_size,
        m.vision_hidden,
        m.text_hidden,
        vision_layers=m.vision_layers,
        text_layers=m.text_layers,
        heads=m.heads,
        mlp_ratio=(4, 3),
        max_positions=256,
        tie_embeddings=True,
        seed=m.init_seed,
    )
    model.generation_config.max_new_tokens = 40
    return model, processor


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
