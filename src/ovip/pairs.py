"""Contrasting response pair sampling (Eq. 2, Algorithm 1 lines "Compute sigma_r ... Add (A*, A-)").

A pure function of one group's scores. The paper's rule is the default; the authors' released code uses other
thresholds (`select_pairs_released_code`, opt-in).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class PairRule:
    """Eq. 2 thresholds (Appendix B.2 defaults): |r+ - r-| > max(delta, 2 sigma_r), r+ > tau_pos, r- < tau_neg."""

    delta: float = 3.0
    tau_pos: float = 5.0
    tau_neg: float = 5.0
    reference_fallback: bool = True


@dataclass(frozen=True)
class IndexPair:
    """Indices into the group; `chosen=None` means the reference answer A* (the fallback pair)."""

    chosen: int | None
    rejected: int


def select_pairs(scores: list[float | None], rule: PairRule = PairRule()) -> list[IndexPair]:
    """Greedy best-vs-worst pairing of one group (Algorithm 1).

    sigma_r is the population standard deviation of the group's valid scores (failed judgments, None, are
    excluded from the pool and from sigma_r). While the best and the worst remaining candidates satisfy Eq. 2,
    pair them and remove both. If no pair was found and min r < tau_neg, pair A* with the worst response.
    Pairing best with worst is the greedy reading of "while there exists a pair": if the extreme pair fails the
    margin or thresholds, every other remaining pair fails too.
    """
    pool = sorted((s, i) for i, s in enumerate(scores) if s is not None)
    if not pool:
        return []
    sigma = statistics.pstdev([s for s, _ in pool]) if len(pool) > 1 else 0.0
    margin = max(rule.delta, 2 * sigma)
    pairs: list[IndexPair] = []
    lo, hi = 0, len(pool) - 1
    while lo < hi:
        (worst, wi), (best, bi) = pool[lo], pool[hi]
        if best - worst > margin and best > rule.tau_pos and worst < rule.tau_neg:
            pairs.append(IndexPair(bi, wi))
            lo, hi = lo + 1, hi - 1
        else:
            break
    if not pairs and rule.reference_fallback and pool[0][0] < rule.tau_neg:
        pairs.append(IndexPair(None, pool[0][1]))
    return pairs


def select_pairs_released_code(
    scores: list[float | None], reference_fallback: bool = True
) -> list[IndexPair]:
    """The thresholds of the authors' released code (notes §1.3 step 4), for comparison runs.

    Groups of 1-4: (top, bottom) if top - bottom >= 4 and top >= 6, else (A*, bottom) if bottom <= 5.
    Groups of 5+: std = max(1.5, sample std); pair (i, -1-i) while s[i] - s[-1-i] > 2 std and s[i] >= 6;
    if none, (A*, bottom) when bottom <= 5.
    """
    pool = sorted(((s, i) for i, s in enumerate(scores) if s is not None), reverse=True)
    if not pool:
        return []
    pairs: list[IndexPair] = []
    if len(pool) < 5:
        (top, ti), (bottom, bi) = pool[0], pool[-1]
        if len(pool) > 1 and top - bottom >= 4 and top >= 6:
            pairs.append(IndexPair(ti, bi))
    else:
        std = max(1.5, statistics.stdev([s for s, _ in pool]))
        i = 0
        while i < len(pool) // 2 and pool[i][0] - pool[-1 - i][0] > 2 * std and pool[i][0] >= 6:
            pairs.append(IndexPair(pool[i][1], pool[-1 - i][1]))
            i += 1
    if not pairs and reference_fallback and pool[-1][0] <= 5:
        pairs.append(IndexPair(None, pool[-1][1]))
    return pairs
