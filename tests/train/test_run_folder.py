"""Run folders through the real `ovip train`: skipped records are counted, printed and saved; paths are stored
absolute so `--resume` works from anywhere; a folder holds one run; `--resume` applies the documented
overrides or refuses the others in one line, and leaves a finished run alone."""

import json
import re
import shutil

import pytest
import yaml
from conftest import run_ovip

from ovip.config import ConfigError
from ovip.train import checkpoint
from ovip.train.run import resume_config


def write_data(root, work):
    """Four good world records (absolute image paths) with three bad ones mixed in: a second copy of the
    first record's id, a missing image and a numeric query."""
    source = next((root / "cache").glob("world-*/preference/data.jsonl"))
    rows = [json.loads(line) for line in source.read_text().splitlines()[:4]]
    for row in rows:
        row["image"] = str(source.parent / row["image"])
    bad = [
        {**rows[0], "query": rows[1]["query"]},
        {"id": "no-image", "image": "missing.png", "query": "q", "reference": "r"},
        {"id": "number", "image": rows[1]["image"], "query": 5, "reference": "r"},
    ]
    records = [rows[0], bad[0], rows[1], bad[1], rows[2], bad[2], rows[3]]
    (work / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return rows


def test_skipped_records_relative_paths_and_resume_from_elsewhere(tiny_world, uninterrupted_run, tmp_path):
    root, recipe, environ = tiny_world
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    rows = write_data(root, work)
    start = [
        "train",
        "--config",
        str(recipe),
        "--train.data",
        "data.jsonl",
        "--train.output_dir",
        "runs/r",
        "--train.skip_invalid",
        "true",
        "--train.max_examples",
        "4",
    ]
    out = run_ovip(start, {**environ, "OVIP_TEST_KILL_AT": "after_pointer@1"}, cwd=work, timeout=600)
    assert out.returncode < 0, out.stderr[-3000:]
    assert "skipped 3 of 7 records (train.skip_invalid)" in out.stderr  # printed ...
    run = work / "runs" / "r"
    report = json.loads((run / "data_report.json").read_text())  # ... and saved
    assert (report["records"], report["skipped"], report["used"]) == (7, 3, 4)
    assert [(r["id"], r["source"], r["problems"][0]["field"]) for r in report["skipped_records"]] == [
        (rows[0]["id"], "data.jsonl:2", "id"),
        ("no-image", "data.jsonl:4", "image"),
        ("number", "data.jsonl:6", "record"),
    ]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["data"] == str(work / "data.jsonl") and saved["train"]["output_dir"] == str(run)

    # From another directory, and with the data file moved away: the stored absolute path is what counts.
    out = run_ovip(["train", "--resume", str(run)], environ, cwd=elsewhere, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data/skipped"] == 3 and summary["prompts"] == 4
    trained = {
        json.loads(line)["example_id"] for line in (run / "experiences.jsonl").read_text().splitlines()
    }
    assert rows[0]["id"] in trained  # the first copy of the duplicated id is kept (both used to be dropped)


def test_resume_overrides_and_finished_runs(tiny_world, uninterrupted_run, tmp_path):
    root, recipe, environ = tiny_world
    run = tmp_path / "run"
    shutil.copytree(uninterrupted_run, run)
    (run / "config.yaml").write_text(
        (run / "config.yaml").read_text().replace(str(uninterrupted_run), str(run))
    )
    summary_file = run / "summary.json"
    before = (summary_file.read_bytes(), summary_file.stat().st_mtime_ns)

    out = run_ovip(["train", "--resume", str(run)], environ, timeout=600)  # finished: nothing to do
    assert out.returncode == 0 and "finished run" in out.stderr
    assert (summary_file.read_bytes(), summary_file.stat().st_mtime_ns) == before

    for extra, key in ((["--train.lr", "1"], "--train.lr"), (["--config", str(recipe)], "--config")):
        out = run_ovip(["train", "--resume", str(run), *extra], environ, timeout=600)
        assert out.returncode == 2 and key in out.stderr and len(out.stderr.strip().splitlines()) == 1, (
            out.stderr
        )
    assert (summary_file.read_bytes(), summary_file.stat().st_mtime_ns) == before
    saved = yaml.safe_load((run / "config.yaml").read_text())
    for extra, message in (
        (["--loss.beta", "0.5"], "--loss.beta cannot change"),
        (["--world.seed", "3"], "--world.seed cannot change"),
        (["--train.epochs", "0"], "train.epochs: must be > 0"),
        (["--train.epochs", "1", "--judge.timeout", "inf"], "judge.timeout: must be a finite"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            resume_config(saved, extra)
    saved["train"]["epochs"] = 3
    with pytest.raises(ConfigError, match="can only get more epochs"):
        resume_config(saved, ["--train.epochs", "2"])

    out = run_ovip(
        ["train", "--resume", str(run), "--train.epochs", "2", "--judge.timeout", "5"], environ, timeout=600
    )  # used to exit 0 having trained nothing
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(summary_file.read_text())
    first = json.loads(before[0])
    assert summary["prompts"] == 2 * first["prompts"] and summary["step"] > first["step"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["judge"]["timeout"] == 5


def test_a_folder_holds_one_run(tiny_world, uninterrupted_run, tmp_path):
    """A new run started in an old run's folder used to keep the old checkpoints: killed and resumed, it
    continued the old run under the new config and padded metrics.jsonl with NUL bytes."""
    root, recipe, environ = tiny_world
    run = tmp_path / "run"
    shutil.copytree(uninterrupted_run, run)
    old_metrics = (run / "metrics.jsonl").read_bytes()
    start = [
        "train",
        "--config",
        str(recipe),
        "--train.output_dir",
        str(run),
        "--train.max_examples",
        "4",
        "--train.seed",
        "5",
    ]
    out = run_ovip(start, environ, timeout=600)
    assert out.returncode == 2 and "already holds a run" in out.stderr and "--overwrite" in out.stderr
    assert (run / "metrics.jsonl").read_bytes() == old_metrics

    out = run_ovip([*start, "--overwrite"], {**environ, "OVIP_TEST_KILL_AT": "after_pointer@1"}, timeout=600)
    assert out.returncode < 0, out.stderr[-3000:]
    assert [p.name for p in (run / "checkpoints").glob("step-*")] == ["step-000001"]  # the old ones are gone
    out = run_ovip(["train", "--resume", str(run)], environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = (run / "metrics.jsonl").read_text()
    assert "\0" not in text
    steps = [json.loads(line)["step"] for line in text.splitlines()]
    assert (
        steps == list(range(1, len(steps) + 1))
        and json.loads((run / "summary.json").read_text())["prompts"] == 4
    )
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 5


@pytest.mark.slow  # two short runs of the tiny world, killed at their first checkpoint
def test_a_run_that_stopped_before_its_first_checkpoint(tiny_world, tmp_path):
    """Two ways a run stops with nothing to resume, each told the way out in one line.

    A folder holding only what an attempt writes before config.yaml (killed while loading the model: its log,
    data_report.json, images/) used to be taken for a fresh folder, the new run appending to the old log: the
    same command now starts afresh there, the old log kept as train.log.1. Killed inside its very first
    checkpoint save, a run used to be refused by `ovip train` (use --resume) and by `--resume` (no complete
    checkpoint) alike: both now name --overwrite, which starts it over."""
    root, recipe, environ = tiny_world
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    (run / "images" / "old.png").write_bytes(b"an image of the attempt")
    (run / "train.log").write_text("the attempt's log\n")
    (run / "data_report.json").write_text("{}")
    start = ["train", "--config", str(recipe), "--train.output_dir", str(run), "--train.max_examples", "4"]

    out = run_ovip(["train", "--resume", str(run)], environ, timeout=600)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr[-3000:]
    assert "stopped before it saved config.yaml" in out.stderr and "same `ovip train` command" in out.stderr

    out = run_ovip(start, {**environ, "OVIP_TEST_KILL_AT": "writing@1"}, timeout=600)
    assert out.returncode < 0, out.stderr[-3000:]  # killed inside the first checkpoint save
    assert (run / "train.log.1").read_text() == "the attempt's log\n"
    assert "the attempt's log" not in (run / "train.log").read_text()
    assert "starting afresh there" in (run / "train.log").read_text()
    assert not (run / "images" / "old.png").exists() and json.loads((run / "data_report.json").read_text())
    assert [p.name for p in (run / "checkpoints").iterdir()] == [".step-000001.tmp"]

    for args in (["train", "--resume", str(run)], start):
        out = run_ovip(args, environ, timeout=600)
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr[-3000:]
        assert "stopped before its first checkpoint" in out.stderr and "--overwrite" in out.stderr
        assert "Traceback" not in out.stderr

    # The way out the message names: the saved config, started over (stopped again once a checkpoint is in).
    out = run_ovip(
        ["train", "--config", str(run / "config.yaml"), "--overwrite"],
        {**environ, "OVIP_TEST_KILL_AT": "after_pointer@1"},
        timeout=600,
    )
    assert out.returncode < 0, out.stderr[-3000:]
    assert [p.name for p in checkpoint.checkpoints(run)] == ["step-000001"]
    assert not (run / "train.log.1").exists()  # --overwrite deletes every log of the old run
