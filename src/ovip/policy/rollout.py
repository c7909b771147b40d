"""Rollout: k sampled responses per (image, query), batched across prompts (Eq. 1).

`model.generate(..., num_return_sequences=k)` in transformers >= 5 runs the vision encoder once per prompt
(`_prepare_multimodal_encoder_kwargs_for_generation` encodes before the inputs are expanded k times), so the
image is preprocessed and encoded once per prompt, not k times; `tests/policy/test_rollout.py` counts the
vision-tower calls to hold us to that.
"""

from __future__ import annotations

import torch
from PIL import Image

from ovip.policy.batch import prompt_text
from ovip.records import Answer


def sample(*args, **kwargs) -> list[list[str]]:
    """The texts of `sample_answers` (same arguments): k responses per (image, query)."""
    return [[a.text for a in group] for group in sample_answers(*args, **kwargs)]


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


@torch.no_grad()
def sample_answers(
    model,
    processor,
    images: list[Image.Image | None],
    queries: list[str],
    k: int,
    temperature: float = 1.2,
    top_p: float = 0.8,
    max_new_tokens: int = 256,
    seed: int | None = None,
    do_sample: bool = True,
) -> list[list[Answer]]:
    """Return k answers for each (image, query); one padded generate call for the whole batch.

    An answer is `cut` when its tokens hold no end-of-sequence token: generation stopped at max_new_tokens.

    Defaults are the authors' released code (the paper is silent): temperature 1.2, top_p 0.8, 256 new tokens.
    `do_sample=False` gives greedy decoding (k must then be 1).
    """
    if len(images) != len(queries):
        raise ValueError(f"{len(images)} images for {len(queries)} queries")
    if not do_sample and k != 1:
        raise ValueError("greedy decoding returns one response per prompt: use k=1")
    device = next(model.parameters()).device
    texts = [prompt_text(processor, q, img is not None) for img, q in zip(images, queries, strict=True)]
    pics = [img.convert("RGB") for img in images if img is not None]
    tokenizer = processor.tokenizer
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation appends at the right end of every row
    try:
        inputs = processor(text=texts, images=pics or None, return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = old_side
    inputs = {key: v.to(device) if isinstance(v, torch.Tensor) else v for key, v in inputs.items()}
    if seed is not None:
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}
    out = model.generate(
        **inputs,
        do_sample=do_sample,
        num_return_sequences=k,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        **sampling,
    )
    new_tokens = out[:, inputs["input_ids"].shape[1] :]
    decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    eos = torch.tensor(sorted(_eos_ids(model, tokenizer)), device=new_tokens.device, dtype=new_tokens.dtype)
    finished = torch.isin(new_tokens, eos).any(dim=1).tolist()
    answers = [Answer(text.strip(), cut=not done) for text, done in zip(decoded, finished, strict=True)]
    return [answers[i * k : (i + 1) * k] for i in range(len(queries))]
