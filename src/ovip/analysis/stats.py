"""Analyses of the paper beyond the benchmark tables: pure functions over already-collected numbers.

* Training dynamics (Appendix B.5, Figs. 10-11): duplicate-response rate, mean distinct responses
  per prompt, perplexity of sampled sequences.
* Probability-mass shift across judge-score bins before vs after training (§4, Fig. 5).
* Negative-image quality (§2.4, Table 1; judge prompt Table 12): error rate, mean quality, mean cosine
  similarity to the positive image.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# --------------------------------------------------------------------------------------------------
# Training dynamics (B.5)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingStats:
    """Fig. 10 over a set of prompts, each sampled k times (k = 16 at temperature 1.2 in the paper).

    duplicate_rate: % of prompts whose k samples hold fewer than `min_distinct` distinct responses
    (the paper's "multiple identical responses appear", 14 for k = 16); mean_distinct: mean number of
    distinct responses per prompt. Responses are compared as exact strings.
    """

    n_prompts: int
    duplicate_rate: float
    mean_distinct: float

    def as_dict(self) -> dict:
        return asdict(self)


def sampling_stats(groups: Sequence[Sequence[str]], min_distinct: int = 14) -> SamplingStats:
    distinct = [len(set(g)) for g in groups]
    n = len(distinct)
    return SamplingStats(
        n_prompts=n,
        duplicate_rate=100.0 * sum(d < min_distinct for d in distinct) / n if n else 0.0,
        mean_distinct=sum(distinct) / n if n else 0.0,
    )


def perplexity(logps: Sequence[float], token_counts: Sequence[int]) -> float:
    """Token-weighted perplexity exp(-sum(logps) / sum(tokens)) of a set of sequences (Fig. 11).

    logps: summed log-probability of each sequence (natural log); token_counts: its number of scored
    tokens. For one sequence this is its own perplexity.
    """
    if len(logps) != len(token_counts):
        raise ValueError(f"{len(logps)} logps but {len(token_counts)} token counts")
    tokens = sum(token_counts)
    if tokens <= 0:
        raise ValueError("perplexity needs at least one token")
    return math.exp(-sum(logps) / tokens)


# --------------------------------------------------------------------------------------------------
# Probability-mass shift (Fig. 5)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MassShift:
    """Probability mass per score bin (0..10) before and after training, and their difference.

    Each list has one entry per bin. `low_score_change` sums the change over bins < 4 ("low score" in
    Fig. 5). Mass is averaged over prompts, so each list sums to 1 when `normalize` is on.
    """

    bins: list[int]
    before: list[float]
    after: list[float]
    change: list[float]
    low_score_change: float

    def as_dict(self) -> dict:
        return asdict(self)


def probability_mass_shift(
    scores: Sequence[float],
    probs_before: Sequence[float],
    probs_after: Sequence[float],
    prompt_ids: Sequence[str] | None = None,
    n_bins: int = 11,
    normalize: bool = True,
    low_score: int = 4,
) -> MassShift:
    """Fig. 5: how training moves probability among the responses the model actually samples.

    Each response has a judge score (0-10, rounded to the nearest bin) and its sequence probability
    under the model before and after training. With `normalize`, probabilities are renormalised within
    each prompt (`prompt_ids`; all one prompt when None) so every prompt contributes mass 1, then bins
    are averaged over prompts. The paper smooths the 11 bins into a curve for plotting; that is left to
    the plot.
    """
    n = len(scores)
    if not (len(probs_before) == len(probs_after) == n):
        raise ValueError("scores, probs_before and probs_after must have the same length")
    prompt_ids = list(prompt_ids) if prompt_ids is not None else ["0"] * n
    if len(prompt_ids) != n:
        raise ValueError("prompt_ids must have one entry per response")

    def binned(probs: Sequence[float]) -> list[float]:
        totals: dict[str, float] = {}
        for p, pid in zip(probs, prompt_ids, strict=True):
            totals[pid] = totals.get(pid, 0.0) + p
        mass = [0.0] * n_bins
        for s, p, pid in zip(scores, probs, prompt_ids, strict=True):
            b = min(n_bins - 1, max(0, round(s)))
            mass[b] += p / totals[pid] if normalize and totals[pid] > 0 else p
        k = len(totals) if normalize else 1
        return [m / k for m in mass]

    before, after = binned(probs_before), binned(probs_after)
    change = [a - b for a, b in zip(after, before, strict=True)]
    return MassShift(list(range(n_bins)), before, after, change, sum(change[:low_score]))


# --------------------------------------------------------------------------------------------------
# Negative-image quality (Table 1)
# --------------------------------------------------------------------------------------------------


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two embeddings (e.g. CLIP image features of I- and I+); 0 for a zero vector."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def parse_quality_reply(reply: str | None) -> int | None:
    """The integer "quality" in [0, 5] of a Table-12 judge reply (strict JSON, possibly fenced); else None."""
    if not reply:
        return None
    match = re.search(r"\{.*\}", reply, re.DOTALL)
    try:
        value = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        return None
    q = value.get("quality") if isinstance(value, dict) else None
    return q if isinstance(q, int) and not isinstance(q, bool) and 0 <= q <= 5 else None


@dataclass(frozen=True)
class NegativeImageSummary:
    """Table 1 for one synthesis method. error_rate: % of judged images that do not contradict the
    positive response; mean_quality: mean 0-5 judge quality; mean_cosine: mean cosine(I-, I+).
    Each mean is over the items that have the value (None = judge or embedding failed, counted)."""

    n: int
    error_rate: float
    mean_quality: float
    mean_cosine: float
    n_error_failed: int
    n_quality_failed: int
    n_cosine_failed: int

    def as_dict(self) -> dict:
        return asdict(self)


def negative_image_summary(
    errors: Sequence[bool | None], quality: Sequence[float | None], cosine_sims: Sequence[float | None]
) -> NegativeImageSummary:
    if not (len(errors) == len(quality) == len(cosine_sims)):
        raise ValueError("errors, quality and cosine_sims must have one entry per image")

    def mean(xs: Sequence[float | None]) -> tuple[float, int]:
        ok = [float(x) for x in xs if x is not None]
        return (sum(ok) / len(ok) if ok else 0.0), len(xs) - len(ok)

    err, err_failed = mean(errors)
    q, q_failed = mean(quality)
    c, c_failed = mean(cosine_sims)
    return NegativeImageSummary(len(errors), 100.0 * err, q, c, err_failed, q_failed, c_failed)
