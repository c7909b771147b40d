"""`ovip experiment smoke` end to end on the tiny world: cells trained and evaluated, tables and the efficiency
figure written, and a rerun trains nothing again."""

import json

import pytest
from conftest import run_ovip

pytestmark = pytest.mark.slow


def test_smoke_experiment_runs_and_resumes(tiny_world):
    root, recipe, environ = tiny_world
    out = root / "experiment"
    args = ["experiment", "smoke", "--config", str(recipe), "--output", str(out)]
    first = run_ovip(args, environ, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    cells = results["summary"]["cells"]
    assert {"base", "ovip", "dpo-online"} <= set(cells)
    assert all(len(cells[c]["HRI (oracle ref.)"]) == 1 for c in ("ovip", "dpo-online"))
    md = (out / "results.md").read_text()
    assert "| ovip |" in md and "| dpo-online |" in md and "efficiency.png" in md
    assert "## The paper's analyses" in md  # dynamics and negatives of every run
    assert (out / "ovip" / "seed-0" / "analysis" / "negatives.png").exists()
    assert results["summary"]["analyses"]["ovip"]["distinct/prompt, last steps"][0] > 0
    assert (out / "efficiency.png").read_bytes()[:4] == b"\x89PNG"
    curve = [r for r in results["runs"] if r["cell"] == "ovip"][0]["curve"]
    assert len(curve) == 2 and curve[0]["samples"] < curve[-1]["samples"]
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/result.json")}
    assert len(stamps) == 2
    again = run_ovip(args, environ, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/result.json")} == stamps  # nothing retrained
