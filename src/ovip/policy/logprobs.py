"""The one log-prob function: shift, mask, sum .

Its test oracle is the naive per-sequence `gather(log_softmax(logits))` over a full forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ovip.policy.batch import Batch, Condition, collate


@dataclass
class SequenceLogps:
    """Summed response-token log-probs.

    logps: [B] float32, sum over response tokens of log pi(y_t | image, query, y_<t).
    token_counts: [B] long, number of response tokens (end-of-turn included).
    """

    logps: torch.Tensor
    token_counts: torch.Tensor


def batch_token_logps(model, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward over a left-padded batch; logits only for the positions that predict response tokens.

    Returns (token log-probs [B, L] float32, zero off the response, mask [B, L] bool) over the last L positions
    of the batch, L = the longest response: every response ends at the last position (left padding).
    """
    mask = batch.response_mask
    keep = int(mask.sum(1).max()) + 1  # the position before the first response token predicts it
    out = model(**batch.inputs, logits_to_keep=keep, use_cache=False)
    logits = out.logits[:, -keep:-1, :]  # [B, keep-1, V]: position t predicts token t+1
    labels = batch.inputs["input_ids"][:, -(keep - 1) :]  # [B, keep-1]
    tok_mask = mask[:, -(keep - 1) :]
    selected = logits[tok_mask].float()  # [n_tokens, V]: log_softmax only where it is needed
    picked = torch.log_softmax(selected, dim=-1).gather(-1, labels[tok_mask].unsqueeze(-1)).squeeze(-1)
    token_logps = torch.zeros(tok_mask.shape, device=picked.device, dtype=picked.dtype)
    return token_logps.masked_scatter(tok_mask, picked), tok_mask


def batch_logps(model, batch: Batch) -> SequenceLogps:
    """Summed response log-probs of a left-padded batch (`batch_token_logps` summed per row)."""
    token_logps, tok_mask = batch_token_logps(model, batch)
    return SequenceLogps(token_logps.sum(1), tok_mask.sum(1))


def sequence_logps(
    model,
    processor,
    conditions: list[Condition],
    no_image: str = "drop",
    micro_batch_size: int | None = None,
    max_length: int | None = None,
) -> SequenceLogps:
    """Summed response log-probs for each condition, in padded micro-batches (gradients flow if enabled)."""
    device = next(model.parameters()).device
    size = micro_batch_size or len(conditions)
    parts = []
    for start in range(0, len(conditions), size):
        batch = collate(processor, conditions[start : start + size], no_image=no_image, max_length=max_length)
        parts.append(batch_logps(model, batch.to(device)))
    return SequenceLogps(torch.cat([p.logps for p in parts]), torch.cat([p.token_counts for p in parts]))
