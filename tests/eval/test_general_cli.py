"""`ovip eval textvqa|realworldqa|mmstar|cvbench` through `ovip.cli.main`: score handwritten responses on
tiny questions.jsonl layouts (accuracies derived by hand below), and generate on one with a tiny random LLaVA.

Hand derivations (accuracy in %):

textvqa     1: answers 10 x "stop", response "Stop." -> normalised "stop"; every leave-one-out subset has 9
               matches -> min(1, 9/3) = 1 -> 1.0
            2: answers 2 x "coca cola" + 8 x "coke", response "coca cola": leaving out a "coca cola" leaves 1
               match (1/3), leaving out a "coke" leaves 2 (2/3) -> (2 * 1/3 + 8 * 2/3) / 10 = 0.6
            3: answers 10 x "yes", response "no" -> 0
            accuracy = (1 + 0.6 + 0) / 3 * 100 = 53.333...
realworldqa a: letter prompt, answer "B", "(B) a car" -> first 4 chars "(b) " -> "b": correct
            b: letter prompt, answer "B", "B. a car" -> "b. a" -> "ba" != "b": wrong
            c: number prompt, answer "3", "3." -> "3": correct            accuracy = 2/3 * 100 = 66.667
mmstar      a: answer "A", "a cat" -> starts with "a": correct (the grader's quirk)
            b: answer "C", "(B)" -> "b": wrong                             accuracy = 50; by category 100 / 0
cvbench     ADE20K answer "(C)", "(C)": correct; COCO "(A)", "(B) left": wrong; Omni3D "(B)", "B": correct
            combined = ((100 + 0) / 2 + 100) / 2 = 75 (the plain mean would be 66.667)
"""

import json

import pytest
from PIL import Image

from ovip.cli import main
from ovip.eval.general import GENERAL_BASELINES, acc_dif
from ovip.policy.tiny import tiny_llava

LETTER = "\nAnswer directly with only the letter of the correct option and nothing else."
QUESTIONS = {
    "textvqa": [
        {"id": 1, "question": "What does the sign say?", "image": "t1.png", "answers": ["stop"] * 10},
        {
            "id": 2,
            "question": "What drink is this?",
            "image": "t2.png",
            "answers": ["coca cola"] * 2 + ["coke"] * 8,
        },
        {"id": 3, "question": "Is it open?", "image": "t3.png", "answers": ["yes"] * 10},
    ],
    "realworldqa": [
        {
            "id": "a",
            "question": "What is ahead?\nA. a bus\nB. a car" + LETTER,
            "image": "r1.png",
            "answer": "B",
        },
        {
            "id": "b",
            "question": "What is left?\nA. a bus\nB. a car" + LETTER,
            "image": "r2.png",
            "answer": "B",
        },
        {
            "id": "c",
            "question": "How many cars are there? Answer with a single number.",
            "image": "r3.png",
            "answer": "3",
        },
    ],
    "mmstar": [
        {
            "id": "a",
            "question": "What animal?\nA. cat\nB. dog",
            "image": "m1.png",
            "answer": "A",
            "category": "coarse perception",
        },
        {
            "id": "b",
            "question": "2 + 2?\nA. 3\nB. 5\nC. 4",
            "image": "m2.png",
            "answer": "C",
            "category": "math",
        },
    ],
    "cvbench": [
        {
            "id": 10,
            "question": "How many chairs?\n(A) 1\n(B) 2\n(C) 3",
            "image": "c1.png",
            "answer": "(C)",
            "source": "ADE20K",
        },
        {
            "id": 11,
            "question": "Where is the cup?\n(A) right\n(B) left",
            "image": "c2.png",
            "answer": "(A)",
            "source": "COCO",
        },
        {
            "id": 12,
            "question": "Which is closer?\n(A) lamp\n(B) sofa",
            "image": "c3.png",
            "answer": "(B)",
            "source": "Omni3D",
        },
    ],
}
RESPONSES = {
    "textvqa": {1: "Stop.", 2: "coca cola", 3: "no"},
    "realworldqa": {"a": "(B) a car", "b": "B. a car", "c": "3."},
    "mmstar": {"a": "a cat", "b": "(B)"},
    "cvbench": {10: "(C)", 11: "(B) left", 12: "B"},
}
EXPECTED = {"textvqa": 160 / 3, "realworldqa": 200 / 3, "mmstar": 50.0, "cvbench": 75.0}


def _layout(root, benchmark):
    """DIR/questions.jsonl + DIR/images/<image> for `benchmark` (the layout of `ovip.eval.items`)."""
    (root / "images").mkdir(parents=True)
    records = QUESTIONS[benchmark]
    (root / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for i, r in enumerate(records):
        Image.new("RGB", (32, 24), (60 * i, 90, 180)).save(root / "images" / r["image"])
    return root


def _responses(path, answers):
    path.write_text("".join(json.dumps({"id": k, "response": v}) + "\n" for k, v in answers.items()))
    return path


def test_score_responses_on_the_four_general_benchmarks(tmp_path, capsys):
    scores = {}
    for benchmark, expected in EXPECTED.items():
        data = _layout(tmp_path / benchmark, benchmark)
        responses = _responses(tmp_path / f"{benchmark}.jsonl", RESPONSES[benchmark])
        out = tmp_path / "out" / benchmark
        assert (
            main(
                ["eval", benchmark, "--responses", str(responses), "--data", str(data), "--output", str(out)]
            )
            == 0
        )
        summary = json.loads((out / "summary.json").read_text())
        assert summary["benchmark"] == benchmark and summary["complete"] is True
        m = summary["metrics"]
        assert m["n"] == len(QUESTIONS[benchmark])
        assert m["accuracy"] == pytest.approx(expected)
        assert m["dif_vs"]["llava-1.5-7b"] == pytest.approx(
            expected - GENERAL_BASELINES["llava-1.5-7b"][benchmark]
        )
        scores[benchmark] = m["accuracy"]
        if benchmark == "mmstar":
            assert m["by_category"] == {"coarse perception": 100.0, "math": 0.0}
        if benchmark == "cvbench":
            assert m["accuracy_kind"] == "combined"
            assert m["by_source"] == {"ADE20K": 100.0, "COCO": 0.0, "Omni3D": 100.0}
    assert "accuracy" in capsys.readouterr().out
    # General Acc_Dif vs LLaVA-1.5-7B: (53.333-57.58) + (66.667-55.4) + (50-33.27) + (75-62.5) = 36.25
    assert acc_dif(scores, GENERAL_BASELINES["llava-1.5-7b"]) == pytest.approx(36.25, abs=1e-9)


def test_partial_and_bad_responses(tmp_path, capsys):
    data = _layout(tmp_path / "cvbench", "cvbench")
    out = tmp_path / "out"
    # Only ADE20K and Omni3D answered: no combined score, the plain mean of the 2 answered (both right).
    partial = _responses(tmp_path / "partial.jsonl", {10: "(C)", 12: "B"})
    assert (
        main(["eval", "cvbench", "--responses", str(partial), "--data", str(data), "--output", str(out)]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_answered"], summary["n_expected"], summary["complete"]) == (2, 3, False)
    assert summary["metrics"]["accuracy"] == 100.0
    assert summary["metrics"]["accuracy_kind"] == "mean (sources missing: COCO)"
    # The shared responses validation: unknown ids and non-string answers are one error, exit 2.
    bad = _responses(tmp_path / "bad.jsonl", {10: 3, 99: "x"})
    assert main(["eval", "cvbench", "--responses", str(bad), "--data", str(data), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not strings" in err and "99" in err


def test_generate_on_realworldqa_with_tiny_llava(tmp_path):
    model_dir = tmp_path / "tiny-llava"
    model, processor = tiny_llava()
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    data, out = _layout(tmp_path / "rwqa", "realworldqa"), tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "realworldqa",
                "--model",
                str(model_dir),
                "--data",
                str(data),
                "--output",
                str(out),
                "--eval.batch_size",
                "2",
                "--eval.max_new_tokens",
                "4",
            ]
        )
        == 0
    )
    lines = (out / "responses.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == ["a", "b", "c"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_generated"], summary["complete"], summary["metrics"]["n"]) == (3, True, 3)
    assert 0.0 <= summary["metrics"]["accuracy"] <= 100.0
