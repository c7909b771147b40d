"""The paired bootstrap (`ovip.eval.paired`) on item tables small enough to enumerate every resample by hand."""

import numpy as np
import pytest

from ovip.eval import bootstrap as bs
from ovip.eval import paired

MEAN = bs.ratio(0, 1, scale=1.0)  # rows [value, 1]: the mean of the values
CHAIR = bs.ratio(0, 1)  # rows [hallucinated mentions, mentions]


def runs(*tables):
    """[G=1, S=1, n, k] from one run's [n, k] rows; several tables stack as base models [G, 1, n, k]."""
    return np.asarray(tables, dtype=float)[:, None]


def difference(a, b, metric, bases=1, seeds=1, resamples=4000, seed=0):
    """(point, interval) of A - B, every run of both cells resampled with the same draws."""
    n = a.shape[-2]
    draws = paired.draw({"s": n}, bases, seeds, resamples, seed)
    w = draws.items["s"]
    diffs = paired.cell_means(paired.run_values(a, metric, w), draws.runs) - paired.cell_means(
        paired.run_values(b, metric, w), draws.runs
    )
    point = paired.run_points(a, metric).mean() - paired.run_points(b, metric).mean()
    return point, paired.interval(diffs), diffs


def test_two_items_give_three_resampled_differences():
    """A scores 2 and 5 on two items, B 1 and 2: per-item differences 1 and 3. A resample draws the items
    (2, 0), (1, 1) or (0, 2) with probabilities 1/4, 1/2, 1/4, so A - B is 1, 2 or 3 and the 95% interval is
    [1, 3]; the point is 2. Higher is better: the interval excludes 0 on the better side, supported."""
    a, b = runs([[2, 1], [5, 1]]), runs([[1, 1], [2, 1]])
    point, bounds, diffs = difference(a, b, MEAN)
    assert point == 2.0 and bounds == (1.0, 3.0)
    assert set(np.round(diffs, 9)) == {1.0, 2.0, 3.0}
    assert np.mean(diffs == 2.0) == pytest.approx(0.5, abs=0.03)
    assert paired.verdict(bounds, higher_is_better=True) == paired.SUPPORTED


def test_a_ratio_metric_is_a_ratio_of_resampled_sums():
    """CHAIR of two items, 1 of 1 mention and 0 of 3 mentions hallucinated: 100 x 1/4 = 25 on both items (the
    mean of the per-item ratios would be 50). The resamples (2, 0), (1, 1), (0, 2) give 100, 25 and 0, so the
    interval against a cell with CHAIR 0 everywhere is [0, 100]."""
    a, b = runs([[1, 1], [0, 3]]), runs([[0, 1], [0, 3]])
    point, bounds, diffs = difference(a, b, CHAIR)
    assert point == 25.0 and bounds == (0.0, 100.0)
    assert set(np.round(diffs, 9)) == {0.0, 25.0, 100.0}


def test_an_equal_pair_differs_by_exactly_zero():
    """Identical runs: every resample gives the same value to both, the interval is [0, 0], not resolved."""
    a = runs([[1, 4], [0, 3], [2, 5]])
    point, bounds, diffs = difference(a, a.copy(), CHAIR)
    assert point == 0.0 and bounds == (0.0, 0.0) and not diffs.any()
    assert paired.verdict(bounds, higher_is_better=False) == paired.UNRESOLVED


def test_a_claim_the_items_contradict():
    """The claim "A hallucinates less than B" (CHAIR, lower is better) where A names one more hallucinated
    object on every item: every resample has A - B > 0, so the interval excludes 0 on the worse side."""
    a = runs([[1, 2], [2, 3], [1, 2]])
    b = runs([[0, 1], [1, 2], [0, 1]])
    point, bounds, _ = difference(a, b, CHAIR)
    assert point == pytest.approx(100 * 4 / 7 - 100 * 1 / 4)
    assert bounds[0] > 0
    assert paired.verdict(bounds, higher_is_better=False) == paired.CONTRADICTED
    assert paired.verdict(bounds, higher_is_better=True) == paired.SUPPORTED


def test_base_models_and_seeds_are_resampled_too():
    """One item, two base models: A - B is 1 on base model 0 and 3 on base model 1. Drawing two base models
    with replacement gives (0, 0), (0, 1) or (1, 1): differences 1, 2, 3, interval [1, 3]. The same holds for
    two training seeds on one base model, and the untrained base ([G, 1, ...]) broadcasts over the seeds."""
    a, b = runs([[2, 1]], [[5, 1]]), runs([[1, 1]], [[2, 1]])
    point, bounds, _ = difference(a, b, MEAN, bases=2)
    assert point == 2.0 and bounds == (1.0, 3.0)
    seeds_a, seeds_b = a.transpose(1, 0, 2, 3), b.transpose(1, 0, 2, 3)  # [1, 2, n, k]
    point, bounds, _ = difference(seeds_a, seeds_b, MEAN, seeds=2)
    assert point == 2.0 and bounds == (1.0, 3.0)
    base = np.asarray([[[[1, 1]]]], dtype=float)  # [G=1, S=1, 1, 2], against two seeds of A
    draws = paired.draw({"s": 1}, 1, 2, 1000)
    values = paired.cell_means(paired.run_values(seeds_a, MEAN, draws.items["s"]), draws.runs)
    base_values = paired.cell_means(paired.run_values(base, MEAN, draws.items["s"]), draws.runs)
    assert set(np.round(values - base_values, 9)) == {1.0, 2.5, 4.0}  # A's seeds score 2 and 5


def test_draws_are_weights_and_seeded():
    draws = paired.draw({"x": 5, "y": 3}, bases=3, seeds=2, resamples=100, seed=7)
    assert draws.items["x"].shape == (100, 5) and (draws.items["x"].sum(1) == 5).all()
    assert draws.runs.shape == (100, 3, 2) and np.allclose(draws.runs.sum((1, 2)), 1.0)
    again = paired.draw({"y": 3, "x": 5}, bases=3, seeds=2, resamples=100, seed=7)
    assert all((again.items[s] == draws.items[s]).all() for s in "xy") and (again.runs == draws.runs).all()
    with pytest.raises(ValueError, match="base model"):
        paired.draw({"x": 1}, bases=0, seeds=1)


def test_hri_per_resample_and_a_zero_span():
    """Eq. 7 with two inputs: a = (8, 50), base (6, 40), reference (10, 60): 2 x (2/4 + 10/20) = 2. A reference
    equal to its base gives NaN, which the interval leaves out."""
    scores = {"x": np.array([8.0, 8.0]), "y": np.array([50.0, 50.0])}
    base = {"x": np.array([6.0, 6.0]), "y": np.array([40.0, 40.0])}
    ref = {"x": np.array([10.0, 6.0]), "y": np.array([60.0, 60.0])}
    values = paired.hri(scores, base, ref)
    assert values[0] == 2.0 and np.isnan(values[1])
    assert paired.interval(values) == (2.0, 2.0)
    assert paired.interval(np.array([np.nan])) is None


@pytest.mark.parametrize(
    ("bounds", "higher", "expected"),
    [
        ((0.5, 2.0), True, paired.SUPPORTED),
        ((0.5, 2.0), False, paired.CONTRADICTED),
        ((-2.0, -0.5), False, paired.SUPPORTED),
        ((-1.0, 1.0), True, paired.UNRESOLVED),
        ((0.0, 1.0), True, paired.UNRESOLVED),  # touching 0 is not excluding it
        (None, True, paired.UNRESOLVED),
    ],
)
def test_verdicts(bounds, higher, expected):
    assert paired.verdict(bounds, higher) == expected
