"""Negative-image quality on the world (Table 1), on hand-built experiences whose answer is known: a negative
drawn from a description that makes A- true and A+ false scores 100% / 100% (error rate 0), a negative that
repeats the positive scene scores 0% / 0% (error rate 100)."""

import json

import pytest
import yaml

from ovip.analysis.negatives import analyze_negatives, check_experience, summarize
from ovip.config.world import WorldConfig
from ovip.world.judge import WorldJudge
from ovip.world.scene import Group, Scene

CFG = WorldConfig()
JUDGE = WorldJudge(CFG.categories, CFG.colors)
# I+: a red box alone. Q asks for a ball: A+ "no", A- "yes, a red ball".
POSITIVE = Scene((Group("box", "red", "large", 0.3, ((0.5, 0.5),)),))
EXIST = {
    "query": "is there a ball in the image?",
    "chosen": "there is no ball, so no.",
    "rejected": "there is a red ball, so yes.",
}
# I+: a red box and a blue ball. A+ names both; A- a green tree.
POSITIVE_2 = Scene(
    (Group("box", "red", "large", 0.3, ((0.3, 0.5),)), Group("ball", "blue", "large", 0.3, ((0.7, 0.5),)))
)
DESCRIBE = {
    "query": "describe this image.",
    "chosen": "there is a red box and a blue ball.",
    "rejected": "there is a green tree.",
}


def experience(base: dict, description: str, example_id: str = "preference-0000000") -> dict:
    return {**base, "description": description, "negative_seed": 7, "example_id": example_id}


def test_a_negative_that_makes_the_rejected_answer_true():
    checks = [
        check_experience(experience(EXIST, "a red ball."), POSITIVE, CFG, JUDGE),
        check_experience(experience(DESCRIBE, "a green tree."), POSITIVE_2, CFG, JUDGE),
    ]
    s = summarize(checks)
    assert s["n"] == 2
    assert s["rejected_true_on_negative"] == 100.0 and s["chosen_false_on_negative"] == 100.0
    assert s["error_rate"] == 0.0
    assert s["chosen_on_positive"] == 10.0 and s["rejected_on_negative"] == 10.0
    assert s["chosen_on_negative"] == 0.0 and s["rejected_on_positive"] == 0.0


def test_a_deliberately_wrong_negative():
    """The descriptions redraw the positive scene's objects: A- stays false and A+ true on I-."""
    checks = [
        check_experience(experience(EXIST, "a red box."), POSITIVE, CFG, JUDGE),
        check_experience(experience(DESCRIBE, "a red box and a blue ball."), POSITIVE_2, CFG, JUDGE),
    ]
    s = summarize(checks)
    assert s["rejected_true_on_negative"] == 0.0 and s["chosen_false_on_negative"] == 0.0
    assert s["error_rate"] == 100.0
    assert s["chosen_on_negative"] == 10.0 and s["rejected_on_negative"] == 0.0


def run_folder(tmp_path, experiences, kind="world"):
    """A run folder as the loop writes it, with the split record the positive scenes are read from."""
    run, split = tmp_path / "run", tmp_path / "preference"
    run.mkdir()
    split.mkdir()
    (run / "config.yaml").write_text(
        yaml.safe_dump({"train": {"data": "world"}, "negatives": {"kind": kind}})
    )
    scenes = {"preference-0000000": POSITIVE, "preference-0000001": POSITIVE_2}
    (split / "data.jsonl").write_text(
        "".join(json.dumps({"id": i, "scene": s.to_dict()}) + "\n" for i, s in scenes.items())
    )
    lines = [
        {
            **e,
            "image_path": str(split / "images" / "x.png"),
            "negative_image_path": str(run / "images" / "n.png"),
        }
        for e in experiences
    ]
    (run / "experiences.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return run


def test_the_command_writes_its_table_and_figure(tmp_path):
    run = run_folder(
        tmp_path,
        [
            experience(EXIST, "a red ball."),
            experience(DESCRIBE, "a red box and a blue ball.", "preference-0000001"),
        ],
    )
    data = analyze_negatives(run)
    assert data["all"]["n"] == 2
    assert data["all"]["rejected_true_on_negative"] == 50.0 and data["all"]["error_rate"] == 50.0
    assert (
        data["per_task"]["exist"]["error_rate"] == 0.0 and data["per_task"]["describe"]["error_rate"] == 100.0
    )
    out = run / "analysis"
    assert json.loads((out / "negatives.json").read_text())["all"] == data["all"]
    assert "| exist | 1 | 100.00 | 100.00 | 0.00 |" in (out / "negatives.md").read_text()
    assert (out / "negatives.png").read_bytes()[:4] == b"\x89PNG"


def test_only_world_drawn_negatives(tmp_path):
    run = run_folder(tmp_path, [experience(EXIST, "a red ball.")], kind="crop")
    with pytest.raises(ValueError, match="only runs on the built-in world"):
        analyze_negatives(run)
