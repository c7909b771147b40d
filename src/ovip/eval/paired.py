"""Paired bootstrap over evaluation items, base models and training seeds: is cell A better than cell B?

Two cells of an experiment answer the same evaluation items with runs on the same base models, so their
difference is measured pairwise, not as two unpaired means with their own spreads. The data of one cell on
one split is a per-item count table of every run, `counts` [G, S, n, k]: G base models (the world's
pretraining seed), S training seeds, n items, k counts per item (CHAIR's are hallucinated mentions and
mentions). The untrained model has S = 1; it broadcasts against the trained cells.

One resample draws, with replacement and the same for every cell (the pairing):
- n items of each split (multinomial weights [n]; a run's metric is then the metric of its resampled column
  sums: a ratio metric such as CHAIR stays a ratio of sums, never a mean of per-item ratios),
- G base models, and S training seeds within each drawn base model (the two-stage bootstrap of
  hierarchical data, Davison & Hinkley 1997, section 3.8): run weights [G, S] that sum to 1.
A cell's value in the resample is the weighted mean of its runs' metrics, and A - B over `resamples` draws
gives the 95% percentile interval (Efron & Tibshirani 1993). Seeded: the same records give the same interval.

The verdict of the claim "A is better than B" on a metric reads the interval of A - B: `supported` when it
excludes 0 on the side the metric calls better, `contradicted` when it excludes 0 on the other side, and
`not resolved at this budget` when it holds 0 (an exactly equal pair has the interval [0, 0]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ovip.eval.bootstrap import Metric

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
UNRESOLVED = "not resolved at this budget"


@dataclass(frozen=True)
class Draws:
    """The resamples shared by every cell: `items[split]` [R, n] item weights (each row sums to n) and
    `runs` [R, G, S] run weights (each row sums to 1)."""

    items: dict[str, np.ndarray]
    runs: np.ndarray


def draw(sizes: Mapping[str, int], bases: int, seeds: int, resamples: int = 2000, seed: int = 0) -> Draws:
    """`resamples` draws of the items of each split (`sizes`: split -> n), of `bases` base models and of
    `seeds` training seeds within each drawn base model."""
    if bases < 1 or seeds < 1 or resamples < 1:
        raise ValueError(f"need >= 1 base model, seed and resample; got {bases}, {seeds}, {resamples}")
    rng = np.random.default_rng(seed)
    items = {}
    for split in sorted(sizes):
        n = sizes[split]
        items[split] = (
            rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
            if n
            else np.zeros((resamples, 0))
        )
    drawn_bases = rng.integers(bases, size=(resamples, bases))
    drawn_seeds = rng.integers(seeds, size=(resamples, bases, seeds))
    runs = np.zeros((resamples, bases, seeds))
    r = np.broadcast_to(np.arange(resamples)[:, None, None], drawn_seeds.shape)
    g = np.broadcast_to(drawn_bases[:, :, None], drawn_seeds.shape)
    np.add.at(runs, (r, g, drawn_seeds), 1.0 / (bases * seeds))
    return Draws(items, runs)


def run_values(counts: np.ndarray, metric: Metric, weights: np.ndarray) -> np.ndarray:
    """[R, G, S] the metric of every run (`counts` [G, S, n, k]) under each resample of the items
    (`weights` [R, n])."""
    counts = np.asarray(counts, dtype=np.float64)
    g, s, n, k = counts.shape
    sums = weights @ counts.transpose(2, 0, 1, 3).reshape(n, g * s * k)  # one matrix product (BLAS)
    return metric(sums.reshape(len(weights), g, s, k))


def run_points(counts: np.ndarray, metric: Metric) -> np.ndarray:
    """[G, S] the metric of every run on all its items."""
    return metric(np.asarray(counts, dtype=np.float64).sum(-2))


def cell_means(values: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """[R] a cell's value in each resample: its runs' values [R, G, S] (S may be 1: the base model)
    weighted by the drawn runs [R, G, S]."""
    return (np.broadcast_to(values, runs.shape) * runs).sum(axis=(-2, -1))


def hri(
    scores: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Eq. 7 elementwise over broadcastable arrays: 2 x sum over the keys of `scores` of
    (a - a_base) / (a_ref - a_base); NaN where a reference equals its base (no gain to normalise by)."""
    total = 0.0
    for key, a in scores.items():
        span = np.asarray(reference[key], dtype=np.float64) - base[key]
        safe = np.where(span == 0, np.nan, span)
        total = total + (a - base[key]) / safe
    return 2.0 * total


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """(low, high) percentile interval of the finite values; None when there is none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def verdict(bounds: tuple[float, float] | None, higher_is_better: bool) -> str:
    """The claim "A is better than B" read from the interval of A - B (module docstring)."""
    if bounds is None:
        return UNRESOLVED
    low, high = bounds if higher_is_better else (-bounds[1], -bounds[0])  # as "better by"
    if low > 0:
        return SUPPORTED
    if high < 0:
        return CONTRADICTED
    return UNRESOLVED
