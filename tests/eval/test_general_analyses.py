"""General-benchmark scorers, Acc_Dif against Table 8, and the analyses of App. B.5 / Fig. 5 / Table 1."""

import math

import pytest

from ovip.analysis.stats import (
    cosine,
    negative_image_summary,
    parse_quality_reply,
    perplexity,
    probability_mass_shift,
    sampling_stats,
)
from ovip.eval.general import (
    GENERAL_BASELINES,
    acc_dif,
    accuracy,
    cvbench_combined,
    cvbench_correct,
    mmstar_correct,
    normalize_vqa_answer,
    realworldqa_correct,
    vqa_soft_accuracy,
)

# Table 8 rows (CVBench, MMStar, RealWorldQA, TextVQA) and the printed General Acc_Dif.
TABLE8 = [
    ("llava-1.5-7b", (58.9, 32.33, 50.5, 55.43), -11.59),  # HA-DPO
    ("llava-1.5-7b", (60.7, 32.47, 54.1, 57.62), -3.86),  # DPO
    ("llava-1.5-7b", (62.8, 34.07, 55.2, 57.56), 0.88),  # OViP
    ("llava-1.5-7b", (63.1, 33.07, 54.1, 57.47), -1.01),  # OViP 2ep
    ("llava-1.5-13b", (61.0, 34.00, 55.8, 61.50), 0.12),  # DPO
    ("llava-1.5-13b", (62.9, 34.40, 55.9, 61.00), 2.02),  # OViP 2ep
]


@pytest.mark.parametrize(("preset", "values", "printed"), TABLE8)
def test_acc_dif_reproduces_table8(preset, values, printed):
    """Acc_Dif is the plain sum of differences, e.g. OViP 7B: 0.3 + 0.8 - 0.2 - 0.02 = +0.88."""
    scores = dict(zip(("cvbench", "mmstar", "realworldqa", "textvqa"), values, strict=True))
    assert acc_dif(scores, GENERAL_BASELINES[preset]) == pytest.approx(printed, abs=1e-6)


def test_multiple_choice_graders():
    letter = "Which is it?\nA. x\nB. y\nPlease answer directly with only the letter of the correct option and nothing else."
    assert realworldqa_correct(letter, "B", "(B) y")  # first 4 chars "(b) " -> "b"
    assert not realworldqa_correct(letter, "B", "B. y")  # "b. y" -> "by": the grader's quirk
    assert realworldqa_correct("How many? Please answer directly with a single word or number.", "3", " 3.")
    assert mmstar_correct("A", "A") and mmstar_correct("B", "(B) because") and not mmstar_correct("C", "B")
    assert (
        cvbench_correct("(C)", "C")
        and cvbench_correct("(C)", "(C) left")
        and not cvbench_correct("(C)", "(A)")
    )
    assert accuracy([True, False, True, True]) == 75.0 and accuracy([]) == 0.0
    assert cvbench_combined({"ADE20K": 60.0, "COCO": 70.0, "Omni3D": 50.0}) == 57.5


def test_vqa_soft_accuracy():
    """10 answers: "two" x2 (normalised to "2"), "2" x1, "three" x7. Prediction "Two":
    each leave-one-out subset holds 2 or 3 matches of the 3 "2"s -> min(1, 2/3) when one of them is
    left out (3 times), min(1, 3/3) = 1 otherwise (7 times): (3 * 2/3 + 7) / 10 = 0.9."""
    gts = ["two", "Two", "2"] + ["three"] * 7
    assert vqa_soft_accuracy("Two", gts) == pytest.approx(0.9)
    assert vqa_soft_accuracy("three", gts) == pytest.approx(1.0)
    assert vqa_soft_accuracy("four", gts) == 0.0
    assert normalize_vqa_answer("The Coca-Cola, dont!") == "coca cola don't"


def test_sampling_stats_and_perplexity():
    """Prompt 1: 16 distinct samples; prompt 2: 13 distinct (< 14, counts as duplicated).
    duplicate rate = 1/2 = 50 %, mean distinct = (16 + 13) / 2 = 14.5.
    Perplexity of sequences with summed logps -6, -2 over 3 + 1 tokens = exp(8 / 4) = e^2."""
    g1 = [f"r{i}" for i in range(16)]
    g2 = [f"r{i}" for i in range(13)] + ["r0", "r1", "r2"]
    s = sampling_stats([g1, g2])
    assert (s.duplicate_rate, s.mean_distinct) == (50.0, 14.5)
    assert perplexity([-6.0, -2.0], [3, 1]) == pytest.approx(math.e**2)
    with pytest.raises(ValueError):
        perplexity([-1.0], [0])


def test_probability_mass_shift():
    """One prompt, three responses scored 2, 5, 9 with probabilities .2 .2 .1 before (mass .5; normalised
    .4 .4 .2) and .05 .2 .25 after (normalised .1 .4 .5). Change: bin 2 -0.3, bin 5 0, bin 9 +0.3;
    low-score (bins < 4) change = -0.3."""
    shift = probability_mass_shift([2, 5, 9], [0.2, 0.2, 0.1], [0.05, 0.2, 0.25])
    assert shift.before[2] == pytest.approx(0.4) and shift.after[9] == pytest.approx(0.5)
    assert shift.change[2] == pytest.approx(-0.3) and shift.change[9] == pytest.approx(0.3)
    assert shift.low_score_change == pytest.approx(-0.3)
    assert sum(shift.before) == pytest.approx(1.0)
    two = probability_mass_shift([0, 10], [1.0, 1.0], [1.0, 1.0], prompt_ids=["a", "b"])
    assert two.before[0] == pytest.approx(0.5) and two.before[10] == pytest.approx(0.5)


def test_negative_image_summary():
    """errors [F, T, F, None] -> 1/3 = 33.3 %; quality [4, 5, None, 3] -> 4.0; cosine [.9, .7, .8, .6] -> .75."""
    s = negative_image_summary([False, True, False, None], [4, 5, None, 3], [0.9, 0.7, 0.8, 0.6])
    assert (
        s.error_rate == pytest.approx(100 / 3)
        and s.mean_quality == 4.0
        and s.mean_cosine == pytest.approx(0.75)
    )
    assert (s.n_error_failed, s.n_quality_failed, s.n_cosine_failed) == (1, 1, 0)
    assert cosine([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2)) and cosine([0, 0], [1, 0]) == 0.0
    assert parse_quality_reply('```json\n{"quality": 4}\n```') == 4
    assert parse_quality_reply('{"quality": 7}') is None and parse_quality_reply("four") is None
