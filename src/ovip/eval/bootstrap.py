"""Bootstrap confidence intervals for benchmark metrics that are functions of summed per-item counts.

Every world metric (CHAIR = hallucinated mentions / mentions, F1 from tp/fp/fn, a mean score, ...) is a
function of the column sums of a per-item count table. Resampling items with replacement B times is then
one matrix product: multinomial weights [B, n] @ counts [n, k] -> resampled sums [B, k], and the metric
function applied to those rows gives B metric values; the interval is their 2.5 / 97.5 percentiles
(the percentile bootstrap, Efron & Tibshirani, 1993). Seeded, so the same answers give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray], np.ndarray]  # [..., k] column sums -> [...] metric values


def ratio(num: int, den: int, scale: float = 100.0) -> Metric:
    """scale * sums[num] / sums[den] (0 where the denominator is 0)."""

    def fn(s: np.ndarray) -> np.ndarray:
        d = s[..., den]
        return np.where(d > 0, scale * s[..., num] / np.where(d > 0, d, 1), 0.0)

    return fn


def harmonic(a: Metric, b: Metric) -> Metric:
    """Harmonic mean of two metrics (0 where both are 0): AMBER's F1 of (100 - CHAIR) and Cover."""

    def fn(s: np.ndarray) -> np.ndarray:
        x, y = a(s), b(s)
        return np.where(x + y > 0, 2 * x * y / np.where(x + y > 0, x + y, 1), 0.0)

    return fn


def complement(m: Metric, total: float = 100.0) -> Metric:
    return lambda s: total - m(s)


def interval(
    counts: np.ndarray, metric: Metric, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """(low, high) percentile-bootstrap interval of `metric` over the items (rows) of `counts` [n, k]."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.shape[0]
    if n == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    values = metric(weights @ counts)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def point(counts: np.ndarray, metric: Metric) -> float:
    """The metric on the full sample (the column sums of every row)."""
    return float(metric(np.asarray(counts, dtype=np.float64).sum(0)))
