"""ovip.eval.metrics against hand-worked numbers and the paper's Table 2 / Appendix A.1."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovip.eval.metrics import (
    HRI_KEYS,
    HRI_PRESETS,
    harmonic_f1,
    hri,
    normalize_yes_no,
    object_metrics,
    yes_no_metrics,
)


def test_object_metrics_hand_worked():
    """Three responses, mentions as lists (AMBER keeps repeats).

    r1 mentions [dog, cat, dog], truth {dog, tree}, candidates {cat}: cat is hallucinated (1 of 3 mentions),
       covers dog (1 of 2 truth), mentions candidate cat (1 of 1).
    r2 mentions [], truth {sky}, candidates {bird}: nothing hallucinated, covers 0 of 1.
    r3 mentions [sky, sun], truth {sky, sun}, candidates {moon, bird}: covers 2 of 2, no hallucination.
    CHAIR   = 1 hallucinated / 5 mentions            = 20 %
    Cover   = (1 + 0 + 2) / (2 + 1 + 2)               = 60 %
    Hal     = 1 hallucinating response / 3            = 33.33 %
    Cog     = 1 candidate mentioned / (1 + 1 + 2)     = 25 %
    F1      = 2 * 80 * 60 / (80 + 60)                 = 68.571 %
    CHAIR_r = 1 / 2 responses that mention objects    = 50 %
    """
    m = object_metrics(
        [["dog", "cat", "dog"], [], ["sky", "sun"]],
        [{"dog", "tree"}, {"sky"}, {"sky", "sun"}],
        [{"cat"}, {"bird"}, {"moon", "bird"}],
    )
    assert (m.n_mentions, m.n_hallucinated_mentions, m.n_truth, m.n_covered) == (5, 1, 5, 3)
    assert m.chair == pytest.approx(20.0)
    assert m.cover == pytest.approx(60.0)
    assert m.hal == pytest.approx(100 / 3)
    assert m.cog == pytest.approx(25.0)
    assert m.f1 == pytest.approx(2 * 80 * 60 / 140)
    assert m.chair_r == pytest.approx(50.0)
    assert m.chair_i == m.chair and m.recall == m.cover and m.precision == pytest.approx(80.0)
    assert m.object_f1 == pytest.approx(m.f1)
    assert m.as_dict()["cog"] == pytest.approx(25.0)


def test_object_metrics_sets_count_once_and_no_candidates():
    """As sets, r1's two "dog" mentions count once: CHAIR = 1/2 = 50 %; Cog is None without candidates."""
    m = object_metrics([{"dog", "cat"}], [{"dog"}])
    assert m.chair == pytest.approx(50.0) and m.cog is None


def test_object_metrics_empty_and_mismatch():
    m = object_metrics([], [])
    assert (m.chair, m.cover, m.hal, m.f1) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        object_metrics([["a"]], [])


objects = st.sampled_from(["dog", "cat", "sky", "tree", "car"])
responses = st.lists(
    st.tuples(st.lists(objects, max_size=5), st.sets(objects, max_size=4)), min_size=1, max_size=6
)


@settings(max_examples=60, deadline=None)
@given(responses, st.integers(min_value=0, max_value=5))
def test_adding_a_hallucinated_mention_never_lowers_chair(rs, which):
    """A mention outside the truth set adds 1 to both CHAIR's numerator and denominator: h/n <= (h+1)/(n+1)."""
    mentioned, truth = [list(m) for m, _ in rs], [t for _, t in rs]
    before = object_metrics(mentioned, truth)
    i = which % len(rs)
    mentioned[i] = mentioned[i] + ["unicorn"]
    after = object_metrics(mentioned, truth)
    assert after.chair >= before.chair - 1e-9
    assert after.hal >= before.hal - 1e-9
    assert after.cover == pytest.approx(before.cover)


@settings(max_examples=60, deadline=None)
@given(responses)
def test_rates_are_bounded(rs):
    m = object_metrics([m for m, _ in rs], [t for _, t in rs])
    for v in (m.chair, m.cover, m.hal, m.f1, m.chair_r, m.object_f1):
        assert 0.0 <= v <= 100.0 + 1e-9


def test_yes_no_metrics_hand_worked():
    """labels   no  no  no  yes yes yes
    answers     no  no  yes no  yes ???   ("???" is neither: wrong, not a "no")
    TP (answered no, truth no) = 2; answered no = 3; truth no = 3; correct = 3 of 6.
    Accuracy 50 %, Precision 2/3 = 66.67 %, Recall 2/3 = 66.67 %, F1 66.67 %.
    """
    m = yes_no_metrics(["no", "No ", "yes", "no", "YES", None], ["no", "no", "no", "yes", "yes", "yes"])
    assert (m.n_correct, m.n_invalid, m.n_predicted_positive, m.n_true_positive) == (3, 1, 3, 2)
    assert m.accuracy == pytest.approx(50.0)
    assert m.precision == pytest.approx(200 / 3) and m.recall == pytest.approx(200 / 3)
    assert m.f1 == pytest.approx(200 / 3)
    yes_pos = yes_no_metrics(["yes", "no"], ["yes", "yes"], positive="yes")
    assert yes_pos.precision == 100.0 and yes_pos.recall == 50.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("No.", "no"),
        ("  no, there is none", "no"),
        ("I see eyes. Yes.", "yes"),
        ("Nobody knows", None),
        ("", None),
        ("There is no dog; yes", "no"),
        ("Maybe", None),
    ],
)
def test_normalize_yes_no(text, expected):
    assert normalize_yes_no(text) == expected


def test_harmonic_f1():
    assert harmonic_f1(0, 0) == 0.0
    assert harmonic_f1(50, 50) == 50.0


# Table 2 of the paper, key metrics a_1..a_5 (AMB_gen F1, MMHal score, ObjectHal F1, LV score, AMB_dis F1) and
# the printed HRI. The extracted table text is readable for all 19 non-baseline rows ("RRAIF-V" in the
# extraction is RLAIF-V); the AMB_gen header lists "Chair F1" but the rows hold Chair, Cover, F1.
TABLE2 = {
    "llava-1.5-7b": [
        ("HA-DPO", (64.86, 1.95, 73.81, 57.30, 85.4), 1.52),
        ("HALVA", (67.78, 2.12, 76.01, 58.60, 86.5), 9.08),
        ("RLAIF-V", (65.79, 2.54, 69.78, 58.90, 86.4), 1.37),
        ("OPA-DPO", (61.79, 2.78, 63.26, 64.80, 86.7), -5.60),
        ("SFT", (66.39, 2.52, 70.30, 52.20, 86.1), -1.47),
        ("DPO", (64.86, 2.35, 71.95, 56.70, 86.8), 1.65),
        ("mDPO", (64.67, 2.55, 73.92, 55.80, 86.1), 2.99),
        ("DPO-iterative", (64.64, 2.32, 72.33, 56.40, 86.5), 1.31),
        ("GRPO-2ep", (66.59, 2.45, 73.83, 58.70, 86.8), 6.75),
        ("OViP", (66.70, 2.52, 73.50, 63.10, 87.3), 9.58),
        ("OViP-2ep", (67.12, 2.65, 74.18, 60.90, 87.4), 10.00),
    ],
    "llava-1.5-13b": [
        ("HALVA", (67.12, 2.45, 77.75, 61.70, 90.0), 4.22),
        ("OPA-DPO", (64.08, 2.88, 64.46, 64.70, 89.3), -7.05),
        ("SFT", (65.64, 2.38, 75.81, 64.00, 89.9), 1.79),
        ("DPO", (66.37, 2.53, 75.00, 65.30, 89.6), 2.42),
        ("mDPO", (65.86, 2.51, 75.35, 64.50, 89.5), 1.78),
        ("GRPO-2ep", (67.84, 2.38, 75.55, 66.70, 90.4), 4.96),
        ("OViP", (68.28, 2.58, 76.52, 64.60, 89.7), 5.25),
        ("OViP-2ep", (68.98, 2.57, 76.75, 67.90, 90.2), 8.02),
    ],
}


@pytest.mark.parametrize(
    ("preset", "method", "values", "printed"),
    [(p, m, v, h) for p, rows in TABLE2.items() for m, v, h in rows],
)
def test_hri_reproduces_table2(preset, method, values, printed):
    """Eq. 7 with the A.1.2 presets gives Table 2's HRI column to its 2 printed decimals."""
    base, ref = HRI_PRESETS[preset]
    assert round(hri(dict(zip(HRI_KEYS, values, strict=True)), base, ref), 2) == pytest.approx(
        printed, abs=1e-9
    )


def test_hri_base_is_zero_and_reference_is_ten():
    """Each term is 0 at the base and 1 at the reference, so HRI(base) = 0 and HRI(ref) = 2 * 5 = 10."""
    for base, ref in HRI_PRESETS.values():
        assert hri(base, base, ref) == pytest.approx(0.0)
        assert hri(ref, base, ref) == pytest.approx(10.0)
    with pytest.raises(KeyError):
        hri({}, *HRI_PRESETS["llava-1.5-7b"])
    base = HRI_PRESETS["llava-1.5-7b"][0]
    with pytest.raises(ValueError):
        hri(base, base, base)


def test_amber_gen_f1_column_from_chair_and_cover():
    """Table 2's AMB_gen F1 is the harmonic mean of (100 - CHAIR) and Cover, e.g. baseline 7B:
    2 * 92.9 * 50.0 / 142.9 = 65.01; OViP 7B: 2 * 96.0 * 51.1 / 147.1 = 66.70. The 13B baseline row
    (6.5, 51.0, 65.99) gives 66.00 from the printed values: the paper must have used unrounded CHAIR /
    Cover there, so that row is only checked to 0.01."""
    assert round(harmonic_f1(100 - 7.1, 50.0), 2) == 65.01
    assert round(harmonic_f1(100 - 4.0, 51.1), 2) == 66.70
    assert harmonic_f1(100 - 6.5, 51.0) == pytest.approx(65.99, abs=0.011)  # 13B baseline
