"""`runner.run_analyses`: the cheap analyses of a finished run, cached in analyses.json; the mass shift only when
the spec asks, and skipped with the reason when the run has no adapter."""

import json

import yaml

from ovip.experiment.runner import run_analyses
from ovip.experiment.spec import ExperimentSpec

LINES = [
    {"step": 1, "prompts/total": 4, "rollout/distinct_per_prompt": 3.0, "rollout/duplicate_rate": 0.5},
    {"step": 2, "prompts/total": 8, "rollout/distinct_per_prompt": 2.0, "rollout/duplicate_rate": 0.25},
    {"step": 3, "prompts/total": 8, "rollout/distinct_per_prompt": 0.0, "rollout/duplicate_rate": 0.0},
]  # step 3 trained on the buffer alone: the last window that sampled is step 2's


def folder_with_run(tmp_path, kind="world"):
    folder = tmp_path / "ovip" / "seed-0"
    run = folder / "run"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in LINES))
    cfg = {"train": {"data": "world"}, "negatives": {"kind": kind}, "rollout": {"k": 4}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "experiences.jsonl").write_text("")
    return folder


def test_dynamics_and_negatives_cached(tmp_path):
    folder = folder_with_run(tmp_path)
    spec = ExperimentSpec("t", cells={"ovip": {}})
    first = run_analyses(spec, folder)
    assert (
        first["dynamics"]["first"]["duplicate_rate"] == 50.0
        and first["dynamics"]["last"]["mean_distinct"] == 2.0
    )
    assert first["negatives"]["n"] == 0 and "mass_shift" not in first
    assert (folder / "analysis" / "dynamics.png").exists() and (folder / "analysis" / "negatives.md").exists()
    stamp = (folder / "analyses.json").stat().st_mtime_ns
    (folder / "analysis" / "dynamics.json").unlink()
    assert run_analyses(spec, folder) == first  # read back, not recomputed
    assert not (folder / "analysis" / "dynamics.json").exists()
    assert (folder / "analyses.json").stat().st_mtime_ns >= stamp


def test_crop_negatives_and_no_adapter_are_skipped_with_a_reason(tmp_path):
    folder = folder_with_run(tmp_path, kind="crop")
    spec = ExperimentSpec("t", cells={"ovip": {}}, analyses={"mass_shift": True, "prompts": 2, "k": 2})
    result = run_analyses(spec, folder)
    assert "only runs on the built-in world" in result["negatives"]["skipped"]
    assert "no PEFT adapter" in result["mass_shift"]["skipped"]
