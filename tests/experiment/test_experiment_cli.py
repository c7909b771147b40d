"""`ovip experiment smoke` end to end on the tiny world: two base models, cells trained and evaluated, item
records written, tables, verdicts and the efficiency figure written, and a rerun trains nothing again."""

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
    assert all(len(cells[c]["HRI (oracle ref.)"]) == 2 for c in ("base", "ovip", "dpo-online"))
    # two base models: two cached pretrained models (world.pretrain.seed 0 and 1), evaluated apart
    bases = results["bases"]
    assert sorted(bases) == ["0", "1"] and bases["0"]["model"] != bases["1"]["model"]
    assert bases["0"]["pretraining"]["threads"] == 1 and bases["0"]["machine"]["threads"] >= 1
    for r in results["runs"]:
        assert r["cost"]["steps"] == r["train"]["step"] > 0 and r["cost"]["samples"] > 0
        items = out / r["folder"] / "items" / "amber_gen.jsonl"
        assert r["folder"] == f"{r['cell']}/pretrain-{r['base_model']}/seed-0" and items.exists()
    paired = results["paired"]
    assert paired["note"] is None and {(r["than"], r["metric"]) for r in paired["rows"]} == {
        *(("dpo-online", m) for m in ("chair", "cover", "objecthal_chair_r", "partner_rate", "hri")),
        ("base", "chair"),
        ("base", "hri"),
    }
    assert all(
        r["verdict"] in ("supported", "contradicted", "not resolved at this budget") for r in paired["rows"]
    )
    md = (out / "results.md").read_text()
    assert "| ovip |" in md and "| dpo-online |" in md and "efficiency.png" in md
    assert (
        "## Paired comparisons: the verdicts" in md and "| the image loss adds | ovip vs dpo-online |" in md
    )
    assert "## Spread over base models" in md and "Machine: runs on " in md
    assert "## The paper's analyses" in md  # dynamics and negatives of every run
    assert (out / "ovip" / "pretrain-0" / "seed-0" / "analysis" / "negatives.png").exists()
    assert results["summary"]["analyses"]["ovip"]["distinct/prompt, last steps"][0] > 0
    assert (out / "efficiency.png").read_bytes()[:4] == b"\x89PNG"
    curve = [r for r in results["runs"] if r["cell"] == "ovip"][0]["curve"]
    assert (
        len(curve) == 2
        and curve[0]["samples"] < curve[-1]["samples"]
        and curve[0]["steps"] < curve[-1]["steps"]
    )
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/pretrain-*/seed-*/result.json")}
    assert len(stamps) == 4
    again = run_ovip(args, environ, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    # nothing retrained, no base model re-evaluated
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/pretrain-*/seed-*/result.json")} == stamps
    assert json.loads((out / "results.json").read_text())["paired"] == paired
