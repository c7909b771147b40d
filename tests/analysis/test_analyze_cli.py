"""`ovip analyze` on a tiny world run trained for real: each analysis writes its table and figure."""

import json

import pytest
from conftest import run_ovip

pytestmark = pytest.mark.slow  # a tiny training run in a subprocess (shared with tests/train)


@pytest.mark.parametrize("analysis", ["dynamics", "negatives", "mass-shift"])
def test_each_analysis_writes_its_files(tiny_world, uninterrupted_run, analysis, tmp_path):
    _, _, environ = tiny_world
    extra = ["--prompts", "3", "--k", "4"] if analysis == "mass-shift" else []
    out = run_ovip(
        ["analyze", analysis, str(uninterrupted_run), "-o", str(tmp_path), *extra], environ, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    name = analysis.replace("-", "_")
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert (tmp_path / f"{name}.md").read_text().startswith("# ")
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    if analysis == "dynamics":
        metrics = [
            json.loads(line) for line in (uninterrupted_run / "metrics.jsonl").read_text().splitlines()
        ]
        assert sum(w["prompts"] for w in data["windows"]) == metrics[-1]["prompts/total"]
        assert all(w["duplicate_rate"] is not None for w in data["windows"])  # the loop records it now
    elif analysis == "negatives":
        experiences = (uninterrupted_run / "experiences.jsonl").read_text().splitlines()
        assert data["all"]["n"] + data["undetermined"] == len(experiences) > 0
        assert data["image_matches"] == data["images_compared"] > 0  # the scenes are the ones drawn
    else:
        assert data["prompts"] == 3 and sum(data["shift"]["before"]) == pytest.approx(1.0)
