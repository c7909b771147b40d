"""Turn (image or none, query, response) conditions into one padded model batch.

Prompts are built with the processor's chat template, so the same code serves LLaVA-1.5-hf, Qwen2-VL and the
built-in world's tiny LLaVA. Sequences are LEFT-padded: every response then ends at the last position, which
lets the log-prob forward ask the model for logits of the last `max_response_len + 1` positions only
(`logits_to_keep`) instead of the whole prompt (576 image tokens for LLaVA-1.5).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image

NO_IMAGE_MODES = ("drop", "blank")


@dataclass
class Condition:
    """One sequence to score: response given (image or None, query)."""

    image: Image.Image | None
    query: str
    response: str


@dataclass
class Batch:
    """A padded batch of B conditions.

    inputs: processor outputs (input_ids [B, T], attention_mask [B, T], pixel_values, ...), left-padded.
    response_mask: [B, T] bool, True on response tokens (the tokens whose log-probs are summed).
    """

    inputs: dict
    response_mask: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.inputs.items()}
        return Batch(moved, self.response_mask.to(device))


def user_messages(query: str, with_image: bool) -> list[dict]:
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": query}]
    return [{"role": "user", "content": content}]


def prompt_text(processor, query: str, with_image: bool) -> str:
    """The chat-templated prompt ending with the assistant's generation prefix."""
    return processor.apply_chat_template(
        user_messages(query, with_image), add_generation_prompt=True, tokenize=False
    )


def response_suffix(processor, query: str, response: str, with_image: bool) -> str:
    """Text the template appends after the prompt for this response, end-of-turn token included.

    The end-of-turn token is scored like any response token (as TRL does): ending the answer is a choice.
    """
    prompt = prompt_text(processor, query, with_image)
    messages = user_messages(query, with_image) + [
        {"role": "assistant", "content": [{"type": "text", "text": response}]}
    ]
    full = processor.apply_chat_template(messages, tokenize=False)
    if full.startswith(prompt):
        return full[len(prompt) :].rstrip("\n")
    # A template that renders the assistant turn differently from its generation prefix: fall back to
    # prompt + response + eos, which is what generation produces.
    return " " + response + (processor.tokenizer.eos_token or "")


def resolve_image(condition: Condition, no_image: str) -> Image.Image | None:
    if condition.image is not None or no_image == "drop":
        return condition.image
    if no_image == "blank":
        # The authors' `svco-ref` strategy: a blank white image instead of no image.
        return Image.new("RGB", (64, 64), (255, 255, 255))
    raise ValueError(f"no_image must be one of {NO_IMAGE_MODES}, got {no_image!r}")


def collate(
    processor, conditions: list[Condition], no_image: str = "drop", max_length: int | None = None
) -> Batch:
    """Tokenize conditions into one left-padded batch.

    `no_image="drop"` removes the image tokens entirely for image-free conditions (the authors' code,
    strategy `orm`); `"blank"` feeds a blank white image instead. A sequence longer than `max_length` is an
    error, never a truncation, because truncating would cut image tokens or the response.
    """
    images, prompts, fulls = [], [], []
    for c in conditions:
        image = resolve_image(c, no_image)
        with_image = image is not None
        if with_image:
            images.append(image.convert("RGB"))
        p = prompt_text(processor, c.query, with_image)
        prompts.append(p)
        fulls.append(p + response_suffix(processor, c.query, c.response, with_image))
    kwargs = {"images": images} if images else {}
    with left_padding(processor.tokenizer):
        inputs = processor(text=fulls, return_tensors="pt", padding=True, **kwargs)
        # Prompt lengths with image tokens expanded, from the same processor (image count expansion is
        # model specific, e.g. Qwen2-VL's depends on the image size).
        prompt_ids = processor(text=prompts, return_tensors="pt", padding=True, **kwargs)
    attention = inputs["attention_mask"].bool()
    full_len = attention.sum(1)
    prompt_len = prompt_ids["attention_mask"].sum(1)
    if max_length is not None and int(full_len.max()) > max_length:
        i = int(full_len.argmax())
        raise ValueError(
            f"sequence {i} has {int(full_len[i])} tokens (image tokens included) > max_length={max_length}; "
            "raise max_length: truncating would cut image tokens or the response"
        )
    T = inputs["input_ids"].shape[1]
    pos = torch.arange(T).unsqueeze(0)
    # Left padding: the response is the last (full_len - prompt_len) positions of each row.
    response_mask = pos >= (T - (full_len - prompt_len)).unsqueeze(1)
    if bool(((full_len - prompt_len) <= 0).any()):
        raise ValueError("a condition has an empty response after tokenization")
    return Batch(dict(inputs), response_mask)


@contextmanager
def left_padding(tokenizer):
    """Pad on the left while inside: every row's continuation (generated or appended) starts at one column."""
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        yield
    finally:
        tokenizer.padding_side = old_side


def prompt_inputs(processor, images: list, queries: list[str]) -> dict:
    """The (image or None, query) prompts as generation reads them: the chat template's generation prefix, the
    images processed together, left-padded."""
    texts = [prompt_text(processor, q, im is not None) for im, q in zip(images, queries, strict=True)]
    pics = [im.convert("RGB") for im in images if im is not None]
    with left_padding(processor.tokenizer):
        return processor(text=texts, images=pics or None, return_tensors="pt", padding=True)


def collate_tokens(processor, images: list, queries: list[str], responses: list[list[int]]) -> Batch:
    """A left-padded batch of (image or None, query) prompts followed by response token ids as given (a policy
    server's sampled tokens, end-of-sequence included): the prompt is built as generation builds it (the chat
    template's generation prefix, the images processed together), the response is not tokenized again."""
    inputs = prompt_inputs(processor, images, queries)
    tokenizer = processor.tokenizer
    ids, attention = inputs["input_ids"], inputs["attention_mask"].bool()
    rows = [
        torch.cat([row[keep], torch.tensor(r, dtype=ids.dtype)])
        for row, keep, r in zip(ids, attention, responses, strict=True)
    ]
    if any(not r for r in responses):
        raise ValueError("a response has no tokens")
    T = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), T), pad, dtype=ids.dtype)
    attention_mask = torch.zeros((len(rows), T), dtype=inputs["attention_mask"].dtype)
    response_mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, (row, r) in enumerate(zip(rows, responses, strict=True)):
        input_ids[i, T - len(row) :], attention_mask[i, T - len(row) :] = row, 1
        response_mask[i, T - len(r) :] = True
    # Per-token inputs of the prompt-only shape (token type ids of some processors) do not fit the longer rows.
    extra = {
        k: v for k, v in inputs.items() if not (isinstance(v, torch.Tensor) and v.shape[:2] == ids.shape)
    }
    return Batch({**extra, "input_ids": input_ids, "attention_mask": attention_mask}, response_mask)
