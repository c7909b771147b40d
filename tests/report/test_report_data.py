"""Run folders are read defensively: torn lines, nulls, NaN tokens and missing keys are gaps, not errors."""

import json

import numpy as np

from ovip.report.data import find_runs, load_run, number, run_names


def test_metrics_with_nulls_missing_keys_and_torn_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "prompts": 4, "loss": 0.5, "grad_norm": null}\n'
        "[1, 2]\n"  # not an object: counted
        '{"step": 2, "prompts": 8, "loss": NaN, "lr": 1e-6}\n'  # Python's json writes NaN; it is a gap
        "\n"
        '{"step": 3, "loss": "text", "grad_norm": Infinity}\n'  # no prompts; text and inf are gaps
        '{"step": 4, "lo'  # torn by a kill: counted
    )
    run = load_run(tmp_path)
    assert run.bad_lines == {"metrics.jsonl": 2}
    assert [r["step"] for r in run.metrics] == [1, 2, 3]
    np.testing.assert_array_equal(run.column("loss"), [0.5, np.nan, np.nan])
    np.testing.assert_array_equal(run.column("grad_norm"), [np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(run.column("lr"), [np.nan, 1e-6, np.nan])
    np.testing.assert_array_equal(run.column("absent"), [np.nan] * 3)
    np.testing.assert_array_equal(run.x("step"), [1, 2, 3])
    np.testing.assert_array_equal(run.x("prompts"), [4, 8, np.nan])  # no point where it is missing
    np.testing.assert_array_equal(run.x("absent"), [1, 2, 3])  # positions when no record has it
    assert run.keys() == {"step", "prompts", "loss", "lr"}
    assert run.experiences == [] and run.summary is None


def test_number_keeps_only_finite_numbers():
    assert [number(v) for v in (1, 2.5, True, None, float("nan"), float("inf"), "3", [1])] == [
        1.0,
        2.5,
        1.0,
        None,
        None,
        None,
        None,
        None,
    ]


def test_empty_folder_reads_as_an_empty_run(tmp_path):
    (tmp_path / "summary.json").write_text("{not json")
    run = load_run(tmp_path)
    assert (run.metrics, run.experiences, run.bad_lines, run.summary) == ([], [], {}, None)


def test_experience_images_found_in_the_run_folder_after_a_move(tmp_path):
    run_dir = tmp_path / "moved"
    (run_dir / "images").mkdir(parents=True)
    (run_dir / "images" / "abc.png").write_bytes(b"png")
    (run_dir / "experiences.jsonl").write_text(
        json.dumps({"negative_image_path": "/old/place/images/abc.png"}) + "\n"
    )
    run = load_run(run_dir)
    assert run.image(run.experiences[0]["negative_image_path"]) == run_dir / "images" / "abc.png"
    assert run.image("/old/place/images/gone.png") is None and run.image(None) is None


def test_find_runs_under_an_experiment_folder(tmp_path):
    exp = tmp_path / "exp"
    for name in ("seed-1", "seed-2", "nested/seed-3", "ovip/pretrain-0/seed-0/run"):
        (exp / name).mkdir(parents=True)
        (exp / name / "metrics.jsonl").write_text("")
    (exp / "notes").mkdir()
    (exp / "ovip" / "pretrain-0" / "seed-0" / "run" / "deeper").mkdir()  # inside a run: not searched
    (exp / "ovip" / "pretrain-0" / "seed-0" / "run" / "deeper" / "metrics.jsonl").write_text("")
    runs = ("nested/seed-3", "ovip/pretrain-0/seed-0/run", "seed-1", "seed-2")  # an experiment's runs, 4 deep
    assert find_runs([exp]) == [(exp / n).resolve() for n in runs]
    assert find_runs([exp / "seed-1", exp])[0] == (exp / "seed-1").resolve()  # as given, each once
    assert len(find_runs([exp / "seed-1", exp])) == 4
    assert find_runs([exp], depth=1) == [(exp / n).resolve() for n in ("seed-1", "seed-2")]


def test_run_names_are_short_and_distinct(tmp_path):
    from pathlib import Path

    paths = [Path("/a/x/run"), Path("/b/x/run"), Path("/c/other")]
    assert run_names(paths) == ["a/x/run", "b/x/run", "c/other"]
    assert run_names([Path("/a/one"), Path("/a/two")]) == ["one", "two"]
