"""Sampling statistics over training (Fig. 10) from metrics lines worked out by hand."""

import json

import pytest

from ovip.analysis.dynamics import analyze_dynamics, windows

# Step 1 sampled 4 prompts (3 distinct each on average, half under the bar); step 2 none (an update from the
# buffer alone: its zeros must not count); step 3 sampled 4 more (2 distinct, a quarter under the bar).
LINES = [
    {"step": 1, "prompts/total": 4, "rollout/distinct_per_prompt": 3.0, "rollout/duplicate_rate": 0.5},
    {"step": 2, "prompts/total": 4, "rollout/distinct_per_prompt": 0.0, "rollout/duplicate_rate": 0.0},
    {"step": 3, "prompts/total": 8, "rollout/distinct_per_prompt": 2.0, "rollout/duplicate_rate": 0.25},
]


def test_windows_weight_each_line_by_its_prompts():
    """Windows of 2 steps: steps 1-2 hold 4 prompts, 3 distinct, 50%; step 3 holds 4, 2 distinct, 25%. One
    window of 3 steps: (4 x 3 + 4 x 2) / 8 = 2.5 distinct, (4 x 50% + 4 x 25%) / 8 = 37.5%."""
    two = windows(LINES, 2)
    assert [(w.first_step, w.last_step, w.prompts) for w in two] == [(1, 2, 4), (3, 3, 4)]
    assert [w.mean_distinct for w in two] == [3.0, 2.0]
    assert [w.duplicate_rate for w in two] == [50.0, 25.0]
    (one,) = windows(LINES, 3)
    assert one.mean_distinct == 2.5 and one.duplicate_rate == 37.5


def test_a_run_without_the_duplicate_counter_has_no_rate():
    old = [{k: v for k, v in m.items() if k != "rollout/duplicate_rate"} for m in LINES]
    (one,) = windows(old, 3)
    assert one.mean_distinct == 2.5 and one.duplicate_rate is None
    with pytest.raises(ValueError):
        windows(LINES, 0)


def test_the_command_writes_its_table_and_figure(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in LINES))
    (tmp_path / "config.yaml").write_text("rollout:\n  k: 16\n")
    data = analyze_dynamics(tmp_path, tmp_path / "out", n_windows=2)
    assert data["k"] == 16 and data["min_distinct"] == 14 and data["steps_per_window"] == 2
    md = (tmp_path / "out" / "dynamics.md").read_text()
    assert "| 1 | 2 | 4 | 3.00 | 50.00 |" in md and "| 3 | 3 | 4 | 2.00 | 25.00 |" in md
    assert (
        json.loads((tmp_path / "out" / "dynamics.json").read_text())["windows"][1]["duplicate_rate"] == 25.0
    )
    assert (tmp_path / "out" / "dynamics.png").read_bytes()[:4] == b"\x89PNG"


def test_sft_samples_nothing(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"step": 1, "prompts/total": 4, "rollout/distinct_per_prompt": 0.0})
    )
    (tmp_path / "config.yaml").write_text("rollout:\n  k: 16\ntrain:\n  method: sft\n")
    (window,) = analyze_dynamics(tmp_path, n_windows=1)["windows"]
    assert window["prompts"] == 4 and window["mean_distinct"] is None
