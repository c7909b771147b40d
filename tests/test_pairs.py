"""Pair selection (Eq. 2, Algorithm 1): worked examples and properties."""

import statistics

from hypothesis import given
from hypothesis import strategies as st

from ovip.pairs import IndexPair, PairRule, select_pairs, select_pairs_released_code


def test_worked_example():
    """Scores [9, 1, 8, 2, 5]: sigma = pstdev = 3.1623 -> margin max(3, 6.32) = 6.32.
    Best 9 vs worst 1: gap 8 > 6.32, 9 > 5, 1 < 5 -> pair (0, 1). Next 8 vs 2: gap 6 <= 6.32 -> stop."""
    assert select_pairs([9, 1, 8, 2, 5]) == [IndexPair(0, 1)]


def test_two_pairs_when_margin_is_small():
    """Scores [10, 10, 0, 0]: sigma = 5 -> margin 10; gap 10 is not > 10 -> no pair; min 0 < 5 -> fallback."""
    assert select_pairs([10, 10, 0, 0]) == [IndexPair(None, 2)]
    """Scores [10]*3 + [0]*3 + [5]*10: sigma = 3.54 -> margin 7.07: pairs (10,0) three times."""
    scores = [10, 10, 10, 0, 0, 0] + [5] * 10
    assert len(select_pairs(scores)) == 3


def test_fallback_only_when_worst_is_below_tau_neg():
    assert select_pairs([5, 5, 6]) == []  # all mediocre: nothing to learn
    assert select_pairs([4, 4, 3]) == [IndexPair(None, 2)]  # all poor: A* vs the worst
    assert select_pairs([4, 4, 3], PairRule(reference_fallback=False)) == []


def test_failed_judgments_are_excluded():
    # valid [9, 1, 5]: sigma 3.27, margin 6.53, gap 8 -> pair; the Nones neither pair nor count in sigma.
    assert select_pairs([None, 9, None, 1, 5]) == [IndexPair(1, 3)]
    assert select_pairs([None, None]) == []


def test_released_code_thresholds_differ():
    # Group of 4: top - bottom = 4 >= 4 and top 6 >= 6 -> pair. The paper's rule: sigma = 2, margin
    # max(3, 4) = 4, and a gap of 4 is not > 4 -> no pair, so the A* fallback.
    (pair,) = select_pairs_released_code([6, 2, 6, 2])
    assert pair.chosen in (0, 2) and pair.rejected in (1, 3)
    assert [p.chosen for p in select_pairs([6, 2, 6, 2])] == [None]


scores_st = st.lists(st.one_of(st.none(), st.integers(0, 10).map(float)), min_size=1, max_size=16)


@given(scores_st)
def test_every_pair_satisfies_eq2_and_uses_each_response_once(scores):
    pairs = select_pairs(scores)
    valid = [s for s in scores if s is not None]
    used = []
    for p in pairs:
        if p.chosen is None:
            assert len(pairs) == 1 and scores[p.rejected] == min(valid) and scores[p.rejected] < 5
            used.append(p.rejected)
            continue
        r_pos, r_neg = scores[p.chosen], scores[p.rejected]
        assert r_pos - r_neg > max(3.0, 2 * statistics.pstdev(valid))
        assert r_pos > 5 and r_neg < 5
        used += [p.chosen, p.rejected]
    assert len(used) == len(set(used))


@given(scores_st)
def test_no_pair_left_behind(scores):
    """After selection, no remaining pair of responses satisfies Eq. 2 (the while loop ran to exhaustion)."""
    pairs = [p for p in select_pairs(scores) if p.chosen is not None]
    used = {i for p in pairs for i in (p.chosen, p.rejected)}
    valid = [s for s in scores if s is not None]
    if not valid:
        return
    margin = max(3.0, 2 * statistics.pstdev(valid))
    rest = [s for i, s in enumerate(scores) if s is not None and i not in used]
    assert not any(a - b > margin and a > 5 and b < 5 for a in rest for b in rest)
