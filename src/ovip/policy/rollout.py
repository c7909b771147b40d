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


@torch.no_grad()
def sample(
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
) -> list[list[str]]:
    """Return k responses for each (image, query); one padded generate call for the whole batch.

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
    new_tokens = out[:, inputs["input_ids"].shape[1]:]
    decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    decoded = [text.strip() for text in decoded]
    return [decoded[i * k:(i + 1) * k] for i in range(len(queries))]
