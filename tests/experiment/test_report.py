"""Experiment report arithmetic on hand-made results: mean ± std over runs, HRI against each run's own base model
with the best cell (the paper's reference) and the oracle, General Acc_Dif, the spread over base models, the
cost columns, the machine line, the efficiency figure, and the verdict table computed from item records."""

import json

import pytest

from ovip.experiment.report import fmt, spread, summarize, write_report
from ovip.experiment.spec import ExperimentSpec

MACHINE = {"cpu": "Test CPU 9000", "cores": 2, "torch": "2.13.0+cpu", "cuda": None, "threads": 1}


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


def base(f1=70, general=85):
    return {
        "eval": evaluation(f1, 4.0, 70, 70, 80, general),
        "machine": MACHINE,
        "pretraining": {"threads": 1, "torch": "2.13.0+cpu", "device": "cpu"},
    }


ORACLE = {"eval": evaluation(100, 6, 100, 100, 100, 100)}
SPEC = ExperimentSpec("t", seeds=[0, 1], cells={"a": {}, "b": {}}, curves={"cells": ["a"], "points": 2})


def run(cell, seed, f1, general=85.0, curve=None, base_model=0):
    r = {
        "cell": cell,
        "base_model": base_model,
        "seed": seed,
        "eval": evaluation(f1, 4.0, 70, 70, 80, general),
        "cost": {"samples": 100, "steps": 7, "wall_seconds": 1.0},
        "machine": MACHINE,
    }
    if curve:
        r["curve"] = curve
    return r


def test_hri_against_the_best_cell_and_the_oracle():
    """Only AMBER F1 moves: a reaches 80 and 90 (mean 85), b 75 and 75. The best cell mean is 85, so
    HRI(a) = 2 x (f1 - 70) / (85 - 70) = 1.333 and 2.667; with the oracle (100) 2 x 10/30 and 2 x 20/30."""
    results = [run("a", 0, 80, 86), run("a", 1, 90, 84), run("b", 0, 75), run("b", 1, 75)]
    s = summarize(SPEC, {0: base()}, ORACLE, results)["cells"]
    assert s["a"]["HRI"] == pytest.approx([4 / 3, 8 / 3])
    assert s["a"]["HRI (oracle ref.)"] == pytest.approx([2 / 3, 4 / 3])
    assert s["b"]["HRI"] == pytest.approx([2 / 3, 2 / 3])
    assert s["a"]["General Acc_Dif"] == pytest.approx([1.0, -1.0])
    assert fmt(s["a"]["AMB F1 ↑"]) == "85.00 ± 7.07"
    assert s["a"]["optimizer steps"] == [7, 7] and s["a"]["policy samples"] == [100, 100]


def test_each_run_against_its_own_base_model_and_the_spread():
    """Two base models with AMBER F1 70 and 60 (general accuracy 85 and 80); a reaches 80 on the first and 75
    on the second: HRI against the oracle 2 x 10/30 = 0.667 and 2 x 15/40 = 0.75, Acc_Dif 0 and +5; the spread
    over base models of a's F1 is 75 - 80, of the base's 60 - 70."""
    spec = ExperimentSpec("t", base_models=[0, 1], cells={"a": {}})
    results = [run("a", 0, 80, base_model=0), run("a", 0, 75, base_model=1)]
    summary = summarize(spec, {0: base(70, 85), 1: base(60, 80)}, ORACLE, results)
    a = summary["cells"]["a"]
    assert a["HRI (oracle ref.)"] == pytest.approx([2 / 3, 0.75])
    assert a["General Acc_Dif"] == pytest.approx([0.0, 5.0])
    assert spread(a["AMB F1 ↑"], summary["run_bases"]["a"]) == "75.00 – 80.00"
    assert spread(summary["cells"]["base"]["AMB F1 ↑"], summary["run_bases"]["base"]) == "60.00 – 70.00"
    assert spread([1.0, 2.0], [0, 0]) == "-"  # one base model: no spread
    assert summary["machines"] == [
        "runs on Test CPU 9000 (2 cores), torch 2.13.0+cpu, 1 torch threads",
        "base models pretrained on 1 thread(s), torch 2.13.0+cpu, device cpu",
    ]


def test_report_files_and_figure(tmp_path):
    curve = [
        {
            "step": 1,
            "samples": 50,
            "steps": 1,
            "stage_seconds": 2.0,
            "eval": evaluation(75, 4, 70, 70, 80, 85),
        },
        {
            "step": 2,
            "samples": 100,
            "steps": 2,
            "stage_seconds": 4.0,
            "eval": evaluation(80, 4, 70, 70, 80, 85),
        },
    ]
    results = [run("a", 0, 80, curve=curve), run("a", 1, 90), run("b", 0, 75), run("b", 1, 75)]
    data = write_report(SPEC, tmp_path, {0: base()}, ORACLE, results)
    md = (tmp_path / "results.md").read_text()
    assert "| a |" in md and "| base |" in md and "85.00 ± 7.07" in md and "efficiency.png" in md
    assert "| optimizer steps |" in md.replace("policy samples | optimizer steps", "| optimizer steps")
    assert md.count("Machine: runs on Test CPU 9000 (2 cores)") >= 2  # the header and beside the table
    assert "No verdict: the spec states no claims." in md
    png = (tmp_path / "efficiency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert data["figure"].endswith("efficiency.png") and (tmp_path / "results.json").exists()


def test_analyses_table_over_runs(tmp_path):
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
    data = write_report(SPEC, tmp_path, {0: base()}, ORACLE, results)
    table = data["summary"]["analyses"]
    assert table["a"]["distinct/prompt, last steps"] == [8.0, 10.0]
    assert table["a"]["A+ contradicted by I- %"] == [60.0, 80.0]
    assert "mass change, scores < 4" not in table["a"]
    md = (tmp_path / "results.md").read_text()
    assert "## The paper's analyses" in md and "mass change" not in md
    assert "| a | 12.00 ± 0.00 | 9.00 ± 1.41 | 5.00 ± 0.00 | 70.00 ± 14.14 | 30.00 ± 14.14 |" in md
    assert "| b | - | - | - | - | - |" in md


def item_records(hallucinated: list[int], dis_wrong: int = 0, rating: int = 4, lv: float = 8.0) -> dict:
    """Item records of every judged split for a model that names `hallucinated[i]` absent objects (one of them
    the prior's partner) in item i's description (3 mentions plus those, 1 of the 2 scene objects covered),
    answers `dis_wrong` of 4 yes/no questions wrongly, rates `rating` - h on MMHal and `lv` - h of 10 on
    LLaVA-Bench."""
    n = len(hallucinated)
    gen, obj, mm, llava = [], [], [], []
    for i, h in enumerate(hallucinated):
        extra = [f"x{j}" for j in range(h)]
        gen.append(
            {
                "id": f"g{i}",
                "mentions": ["a", "a", "a", *extra],
                "hallucinated": extra,
                "covered": ["a"],
                "truth": ["a", "b"],
                "partners_baited": ["p"],
                "partners_named": ["p"] * bool(h),
            }
        )
        obj.append({"id": f"o{i}", "objects": ["a", *extra], "hallucinated": extra, "truth": ["a", "b"]})
        mm.append({"id": f"m{i}", "rating": max(0, rating - h), "judge_failed": False})
        llava.append({"id": f"l{i}", "judge_score": lv - h, "reference_score": 10.0, "judge_failed": False})
    dis = [{"id": f"d{i}", "prediction": ("yes" if i < dis_wrong else "no"), "label": "no"} for i in range(4)]
    assert len(gen) == n
    return {"amber_gen": gen, "objecthal": obj, "amber_dis": dis, "mmhal": mm, "llava_bench": llava}


def write_items(out, folder, records) -> dict:
    (out / folder / "items").mkdir(parents=True)
    for split, rows in records.items():
        (out / folder / "items" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"folder": folder, "items": {split: f"items/{split}.jsonl" for split in records}}


def test_verdict_table_from_an_experiment_folder(tmp_path):
    """Two base models x one seed. On base model b the untrained model names 2 absent objects in each of 4
    items; `good` names none on base model 0 and 1 in every item on base model 1, `bad` 3 in every item on
    both, `same` exactly what `good` does. So good beats bad on CHAIR in every resample (supported), bad vs
    good is contradicted, good vs same differs by exactly 0 (not resolved, [+0.00, +0.00]), and good beats
    the base on every metric but Cover (covered the same: a difference of exactly 0)."""
    spec = ExperimentSpec(
        "v",
        base_models=[0, 1],
        seeds=[0],
        cells={"good": {}, "bad": {}, "same": {}},
        claims=[
            {"claim": "good beats bad", "better": "good", "than": "bad", "metrics": ["chair", "hri"]},
            {"claim": "bad beats good", "better": "bad", "than": "good", "metrics": ["chair"]},
            {"claim": "good beats its copy", "better": "good", "than": "same", "metrics": ["chair"]},
            {"claim": "good beats the base", "better": "good", "than": "base"},
        ],
        resamples=500,
    )
    oracle = {
        "eval": ORACLE["eval"],
        **write_items(tmp_path, "oracle", item_records([0] * 4, rating=6, lv=10)),
    }
    bases = {
        b: {**base(), **write_items(tmp_path, f"base/pretrain-{b}", item_records([2] * 4, dis_wrong=1))}
        for b in (0, 1)
    }
    per_base = {"good": ([0] * 4, [1] * 4), "bad": ([3] * 4, [3] * 4), "same": ([0] * 4, [1] * 4)}
    results = [
        {
            **run(cell, 0, 80, base_model=b),
            **write_items(tmp_path, f"{cell}/pretrain-{b}/seed-0", item_records(h[b])),
        }
        for cell, h in per_base.items()
        for b in (0, 1)
    ]
    data = write_report(spec, tmp_path, bases, oracle, results)
    rows = {(r["claim"], r["metric"]): r for r in data["paired"]["rows"]}
    good_bad = rows[("good beats bad", "chair")]
    # CHAIR: good 0/12 on base 0 and 4/16 = 25 on base 1 (mean 12.5); bad 12/24 = 50 on both
    assert (good_bad["a"], good_bad["b"], good_bad["difference"]) == pytest.approx((12.5, 50.0, -37.5))
    assert good_bad["interval"][1] < 0 and good_bad["verdict"] == "supported"
    assert rows[("good beats bad", "hri")]["verdict"] == "supported"
    assert rows[("bad beats good", "chair")]["verdict"] == "contradicted"
    copy = rows[("good beats its copy", "chair")]
    assert copy["interval"] == [0.0, 0.0] and copy["verdict"] == "not resolved at this budget"
    verdicts = {m: rows[("good beats the base", m)]["verdict"] for m in spec.claims[3].metrics}
    assert verdicts == {
        "chair": "supported",
        "cover": "not resolved at this budget",
        "objecthal_chair_r": "not resolved at this budget",  # every item of both still hallucinates on base 1
        "partner_rate": "not resolved at this budget",
        "hri": "supported",
    }
    md = (tmp_path / "results.md").read_text()
    assert "## Paired comparisons: the verdicts" in md and "4 amber_gen" in md and "500 resamples" in md
    assert (
        "| good beats its copy | good vs same | CHAIR ↓ | 12.50 | 12.50 | +0.00 [+0.00, +0.00] "
        "| not resolved at this budget | 7 / 7 | 100 / 100 |" in md
    )
    assert md.count("| 7 / - | 100 / - |") == 5  # the untrained base has no cost
    assert "| good beats bad | good vs bad | CHAIR ↓ | 12.50 | 50.00 | -37.50 [" in md


def test_missing_item_records_are_a_note_not_a_partial_table(tmp_path):
    spec = ExperimentSpec("v", cells={"a": {}}, claims=[{"claim": "a wins", "better": "a", "than": "base"}])
    oracle = {"eval": ORACLE["eval"], **write_items(tmp_path, "oracle", item_records([0] * 2))}
    bases = {0: {**base(), **write_items(tmp_path, "base/pretrain-0", item_records([1] * 2))}}
    results = [{**run("a", 0, 80), "folder": "a/pretrain-0/seed-0", "items": {}}]
    data = write_report(spec, tmp_path, bases, oracle, results)
    assert data["paired"]["rows"] == [] and "no item records of amber_gen" in data["paired"]["note"]
    assert "No verdict: no paired comparison:" in (tmp_path / "results.md").read_text()
    broken = item_records([0] * 2)
    del broken["llava_bench"][1]["reference_score"]
    results = [{**run("a", 0, 80), **write_items(tmp_path, "a/pretrain-0/seed-0", broken)}]
    note = write_report(spec, tmp_path, bases, oracle, results)["paired"]["note"]
    assert note == "no paired comparison: llava_bench item 'l1': no field 'reference_score'"
