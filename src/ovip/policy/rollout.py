"""Rollout: k sampled responses per (image, query), batched across prompts (Eq. 1), each from its own seed.

Sampling does not depend on how prompts are batched. Prompt i of a call comes with its own seed `seeds[i]`,
and output row (i, j), its j-th sample, draws every token from its own stream of uniforms, a CPU
`torch.Generator` seeded with `row_seed(seeds[i], j)`. `RowSampler`, a `LogitsProcessor` appended last,
applies temperature and top-p to each row's logits exactly as transformers' `TemperatureLogitsWarper` and
`TopPLogitsWarper` do (top_k=0, at least one token kept), turns them into probabilities, picks the token on
which the row's next uniform falls in their cumulative sum (inverse-CDF sampling, vocabulary order), and
returns logits that put all probability on that token, so `generate` takes it (transformers' own warpers are
off). So the k samples of a prompt are the same whether it is generated alone, in a batch of 16, or in a
policy server's batch with other requests, up to the float rounding of padded batched kernels: logits that
differ in the last bits move a uniform across a boundary of the cumulative sum with negligible probability
(`benchmarks/bench_sampler.py` counts how often). The uniforms come from CPU generators on every device, so
a seed names the same draws on CPU and GPU, and a shorter `max_new_tokens` gives a prefix of the same sample.

`model.generate(..., num_return_sequences=k)` in transformers >= 5 runs the vision encoder once per prompt
(`_prepare_multimodal_encoder_kwargs_for_generation` encodes before the inputs are expanded k times), so the
image is preprocessed and encoded once per prompt, not k times; `tests/policy/test_rollout.py` counts the
vision-tower calls to hold us to that.

The sampler also records, per sampled token, its log-prob under the model's own distribution (temperature 1,
no top-p: what the trainer's log-prob forward computes, and what vLLM reports as raw log-probs), for a policy
server to return (`Sampled.logprobs`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import LogitsProcessor, LogitsProcessorList

from ovip.policy.batch import prompt_inputs
from ovip.records import Answer


@dataclass(frozen=True)
class Sampled:
    """One sampled answer with what generation knows about it.

    token_ids: the answer's tokens, its end-of-sequence token included unless `cut`; logprobs: log pi(token |
    prompt, tokens before) at temperature 1 without top-p, one per token id (the end-of-sequence token's too);
    prompt_tokens: the prompt's length in tokens, image tokens included.
    """

    text: str
    cut: bool
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    prompt_tokens: int = 0

    @property
    def answer(self) -> Answer:
        return Answer(self.text, cut=self.cut)


def prompt_seed(seed: int, position: int) -> int:
    """The sampling seed of the prompt at `position` of a run's data order (epochs counted: the prompt p of
    epoch e sits at e * N + p) in a run seeded `seed` (`train.seed`). It depends on nothing else: not on the
    rank that samples the prompt, the batch it is sampled in, or whether a policy server samples it."""
    return seed * 1_000_003 + position


def row_seed(seed: int, j: int) -> int:
    """The generator seed of the j-th sample of a prompt seeded `seed`: 64 bits of BLAKE2b over both, so that
    neighbouring prompt seeds and sample indices give unrelated streams."""
    digest = hashlib.blake2b(f"{seed}:{j}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def uniforms(seeds: list[int], k: int, steps: int) -> torch.Tensor:
    """[len(seeds) * k, steps] float32: row i * k + j holds the first `steps` uniforms of sample j of prompt i
    (the row order of `generate(num_return_sequences=k)`)."""
    out = torch.empty(len(seeds) * k, steps)
    generator = torch.Generator()
    for i, seed in enumerate(seeds):
        for j in range(k):
            generator.manual_seed(row_seed(seed, j))
            torch.rand(steps, generator=generator, out=out[i * k + j])
    return out


class RowSampler(LogitsProcessor):
    """Per-row sampling as the last logits processor of `generate` (see the module docstring).

    `draws` [rows, steps] holds each row's uniforms; None decodes greedily (the argmax, as `do_sample=False`
    alone does). Each call picks one token per row, appends its raw log-prob to `logprobs`, and returns logits
    that are 0 at that token and -inf elsewhere. `prompt_len` is the padded prompt length: a call's step is
    the number of tokens generated before it.
    """

    def __init__(self, draws: torch.Tensor | None, temperature: float, top_p: float, prompt_len: int):
        self.draws, self.temperature, self.top_p, self.prompt_len = draws, temperature, top_p, prompt_len
        self.logprobs: list[torch.Tensor] = []  # [rows] per step, on the model's device

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        if self.draws is None:
            tokens = scores.argmax(dim=-1)
        else:
            # A generate that runs one step past its end (transformers' deferred stop check on CUDA) gets the
            # last uniform again; that step's token is dropped by generate.
            if self.draws.device != scores.device:  # once, at the first step
                self.draws = self.draws.to(scores.device)
            u = self.draws[:, min(step, self.draws.shape[1] - 1)]
            tokens = sample_tokens(warp(scores, self.temperature, self.top_p), u)
        self.logprobs.append(torch.log_softmax(scores, dim=-1).gather(1, tokens[:, None]).squeeze(1))
        forced = torch.full_like(scores, -torch.inf)
        return forced.scatter_(1, tokens[:, None], 0.0)


def warp(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """`scores` / temperature, then the smallest set of tokens whose probability reaches top_p kept (the
    others -inf): transformers' TemperatureLogitsWarper, then TopPLogitsWarper(min_tokens_to_keep=1)."""
    if temperature != 1.0:
        scores = scores / temperature
    if top_p < 1.0:
        ascending, order = torch.sort(scores, descending=False)
        below = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)  # the tail whose mass is <= 1 - top_p
        below[..., -1:] = False  # the most likely token always stays
        scores = scores.masked_fill(below.scatter(1, order, below), -torch.inf)
    return scores


def sample_tokens(scores: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """[rows] tokens: in each row, the first token whose cumulative probability (vocabulary order) exceeds
    u * total. A token of probability 0 is never taken: its cumulative sum equals its predecessor's, and the
    target stays below the total (u * total rounds to the total itself for u within float epsilon of 1)."""
    cdf = torch.softmax(scores, dim=-1).cumsum(dim=-1)
    total = cdf[:, -1:]
    target = torch.minimum(
        u.to(cdf.dtype).unsqueeze(1) * total, torch.nextafter(total, torch.zeros_like(total))
    )
    return torch.searchsorted(cdf, target, right=True).squeeze(1)


def sample(*args, **kwargs) -> list[list[str]]:
    """The texts of `sample_answers` (same arguments): k responses per (image, query)."""
    return [[a.text for a in group] for group in sample_answers(*args, **kwargs)]


def sample_answers(*args, **kwargs) -> list[list[Answer]]:
    """`generate_samples` (same arguments) as `Answer`s: k per (image, query)."""
    return [[s.answer for s in group] for group in generate_samples(*args, **kwargs)]


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


@torch.no_grad()
def generate_samples(
    model,
    processor,
    images: list[Image.Image | None],
    queries: list[str],
    k: int,
    temperature: float = 1.2,
    top_p: float = 0.8,
    max_new_tokens: int = 256,
    seeds: list[int] | None = None,
    do_sample: bool = True,
) -> list[list[Sampled]]:
    """Return k samples for each (image, query); one padded generate call for the whole batch.

    seeds: one per prompt (see the module docstring): prompt i's samples depend on `seeds[i]`, the model and
    the settings only, never on the other prompts of the call. None draws them from torch's global generator
    (so `torch.manual_seed` still makes a call reproducible). A sample is `cut` when its tokens hold no
    end-of-sequence token: generation stopped at max_new_tokens.

    Defaults are the authors' released code (the paper is silent): temperature 1.2, top_p 0.8, 256 new tokens.
    `do_sample=False` gives greedy decoding (k must then be 1; seeds are not used).
    """
    if len(images) != len(queries):
        raise ValueError(f"{len(images)} images for {len(queries)} queries")
    if not do_sample and k != 1:
        raise ValueError("greedy decoding returns one response per prompt: use k=1")
    if seeds is not None and len(seeds) != len(queries):
        raise ValueError(f"{len(seeds)} seeds for {len(queries)} queries: give one seed per prompt")
    if do_sample and not (temperature > 0 and 0 < top_p <= 1):
        raise ValueError(f"sampling needs temperature > 0 and top_p in (0, 1], got {temperature}, {top_p}")
    if not queries:
        return []
    device = next(model.parameters()).device
    tokenizer = processor.tokenizer
    inputs = prompt_inputs(processor, images, queries)  # generation appends at the right end of every row
    inputs = {key: v.to(device) if isinstance(v, torch.Tensor) else v for key, v in inputs.items()}
    prompt_len = inputs["input_ids"].shape[1]
    draws = None
    if do_sample:
        if seeds is None:
            seeds = torch.randint(0, 2**62, (len(queries),)).tolist()
        draws = uniforms(seeds, k, max_new_tokens)
    sampler = RowSampler(draws, temperature, top_p, prompt_len)
    # transformers refuses num_return_sequences > 1 with do_sample=False, so a sampled call keeps
    # do_sample=True with every warper off: the forced logits put all probability on the chosen token, which
    # `torch.multinomial` takes whatever torch's global generator draws.
    settings = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if do_sample else {}
    out = model.generate(
        **inputs,
        num_return_sequences=k,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        logits_processor=LogitsProcessorList([sampler]),
        **({"do_sample": False} | settings),
    )
    new_tokens = out[:, prompt_len:]
    decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    eos = torch.tensor(sorted(_eos_ids(model, tokenizer)), device=new_tokens.device, dtype=new_tokens.dtype)
    is_eos = torch.isin(new_tokens, eos)
    # Tokens up to the first end-of-sequence token (included); all of them for a cut answer.
    lengths = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, new_tokens.shape[1]).tolist()
    logprobs = torch.stack(sampler.logprobs[: new_tokens.shape[1]], dim=1).float().cpu().tolist()
    ids = new_tokens.cpu().tolist()
    finished = is_eos.any(dim=1).tolist()
    prompt_tokens = inputs["attention_mask"].sum(dim=1).repeat_interleave(k).tolist()
    samples = [
        Sampled(text.strip(), not done, tuple(row[:n]), tuple(lp[:n]), p)
        for text, row, lp, n, done, p in zip(
            decoded, ids, logprobs, lengths, finished, prompt_tokens, strict=True
        )
    ]
    return [samples[i * k : (i + 1) * k] for i in range(len(queries))]
