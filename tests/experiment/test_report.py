"""Experiment report arithmetic on hand-made results: mean ± std over seeds, HRI against the base with the
best cell (the paper's reference) and the oracle, General Acc_Dif, and the efficiency figure."""

import pytest

from ovip.experiment.report import fmt, summarize, write_report
from ovip.experiment.spec import ExperimentSpec


def evaluation(f1, mmhal, objhal, lv, dis, general):
    return {
        "hri_inputs": {
            "amber_gen_f1": f1,
            "mmhal_score": mmhal,
            "objecthal_f1": objhal,
            "llava_bench": lv,
            "amber_dis_f1": dis,
        },
        "amber_gen": {
            "chair": 100 - f1,
            "cover": f1,
            "f1": f1,
            "partner_rate": 1.0,
            "fluency": {"parse_rate": 100.0, "mention_repetition": 0.0},
        },
        "mmhal": {"score": mmhal},
        "objecthal": {"chair_r": 0.0, "f1": objhal},
        "llava_bench": {"score": lv},
        "amber_dis": {"f1": dis},
        "general": {"accuracy": general},
    }


BASE = {
    "eval": evaluation(70, 4.0, 70, 70, 80, 85),
    "oracle": {"hri_inputs": evaluation(100, 6, 100, 100, 100, 100)["hri_inputs"]},
}
SPEC = ExperimentSpec("t", seeds=[0, 1], cells={"a": {}, "b": {}}, curves={"cells": ["a"], "points": 2})


def run(cell, seed, f1, general=85.0, curve=None):
    r = {
        "cell": cell,
        "seed": seed,
        "eval": evaluation(f1, 4.0, 70, 70, 80, general),
        "cost": {"samples": 100, "wall_seconds": 1.0},
    }
    if curve:
        r["curve"] = curve
    return r


def test_hri_against_the_best_cell_and_the_oracle():
    """Only AMBER F1 moves: a reaches 80 and 90 (mean 85), b 75 and 75. The best cell mean is 85, so
    HRI(a) = 2 x (f1 - 70) / (85 - 70) = 1.333 and 2.667; with the oracle (100) 2 x 10/30 and 2 x 20/30."""
    results = [run("a", 0, 80, 86), run("a", 1, 90, 84), run("b", 0, 75), run("b", 1, 75)]
    s = summarize(SPEC, BASE, results)["cells"]
    assert s["a"]["HRI"] == pytest.approx([4 / 3, 8 / 3])
    assert s["a"]["HRI (oracle ref.)"] == pytest.approx([2 / 3, 4 / 3])
    assert s["b"]["HRI"] == pytest.approx([2 / 3, 2 / 3])
    assert s["a"]["General Acc_Dif"] == pytest.approx([1.0, -1.0])
    assert fmt(s["a"]["AMB F1 ↑"]) == "85.00 ± 7.07"


def test_report_files_and_figure(tmp_path):
    curve = [
        {"step": 1, "samples": 50, "stage_seconds": 2.0, "eval": evaluation(75, 4, 70, 70, 80, 85)},
        {"step": 2, "samples": 100, "stage_seconds": 4.0, "eval": evaluation(80, 4, 70, 70, 80, 85)},
    ]
    results = [run("a", 0, 80, curve=curve), run("a", 1, 90), run("b", 0, 75), run("b", 1, 75)]
    data = write_report(SPEC, tmp_path, BASE, results)
    md = (tmp_path / "results.md").read_text()
    assert "| a |" in md and "| base |" in md and "85.00 ± 7.07" in md and "efficiency.png" in md
    png = (tmp_path / "efficiency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert data["figure"].endswith("efficiency.png") and (tmp_path / "results.json").exists()


def test_analyses_table_over_seeds(tmp_path):
    """Cell a's two runs: 8 and 10 distinct responses in the last window (9 ± 1.41), negatives contradicting A+
    in 60% and 80% of cases (70 ± 14.14); cell b ran without analyses and shows dashes; no run has a mass
    shift, a last-window duplicate rate or an A- rate, so those columns are left out."""

    def analyses(distinct, contradicted):
        return {
            "dynamics": {
                "first": {"mean_distinct": 12.0, "duplicate_rate": 5.0},
                "last": {"mean_distinct": distinct},
            },
            "negatives": {"chosen_false_on_negative": contradicted, "error_rate": 100 - contradicted},
        }

    results = [run("a", 0, 80), run("a", 1, 90), run("b", 0, 75)]
    results[0]["analyses"], results[1]["analyses"] = analyses(8.0, 60.0), analyses(10.0, 80.0)
    data = write_report(SPEC, tmp_path, BASE, results)
    table = data["summary"]["analyses"]
    assert table["a"]["distinct/prompt, last steps"] == [8.0, 10.0]
    assert table["a"]["A+ contradicted by I- %"] == [60.0, 80.0]
    assert "mass change, scores < 4" not in table["a"]
    md = (tmp_path / "results.md").read_text()
    assert "## The paper's analyses" in md and "mass change" not in md
    assert "| a | 12.00 ± 0.00 | 9.00 ± 1.41 | 5.00 ± 0.00 | 70.00 ± 14.14 | 30.00 ± 14.14 |" in md
    assert "| b | - | - | - | - | - |" in md
