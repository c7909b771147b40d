"""End to end: the real `ovip train` entry point on a tiny built-in world, then SIGKILL + resume.

The world is shrunk (a few hundred scenes, a 2-layer model pretrained for a few dozen steps) so the test runs in
well under a minute; the code path is the default one.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_ovip
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # minutes of real subprocess runs; CI runs them (only -m gpu is opt-in)


@pytest.fixture(scope="module")
def env(tiny_world):
    return tiny_world


def adapter(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run / "checkpoints" / latest / "adapter" / "adapter_model.safetensors"))


def test_train_writes_artifacts_and_only_lora_changes(env, uninterrupted_run):
    root, recipe, environ = env
    run = uninterrupted_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] >= 2
    weights = adapter(run)
    assert weights and all("lora_" in k for k in weights)
    assert any(
        float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k
    )  # B starts at 0: it moved
    exps = [json.loads(x) for x in (run / "experiences.jsonl").read_text().splitlines()]
    assert exps and all(Path(e["negative_image_path"]).exists() for e in exps)
    # Frozen weights did not change: the base model's logits are those of the cached checkpoint.
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base_dir = next((root / "cache").glob("base-*"))
    base = AutoModelForImageTextToText.from_pretrained(base_dir)
    latest = (run / "checkpoints" / "latest").read_text().strip()
    tuned = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(base_dir), run / "checkpoints" / latest / "adapter"
    )
    merged_base = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in tuned.state_dict().items()
        if "lora_" not in k
    }
    for k, v in base.state_dict().items():
        assert torch.equal(v, merged_base[k]), k


def test_sigkill_then_resume_matches_uninterrupted(env, uninterrupted_run):
    root, recipe, environ = env
    full = uninterrupted_run
    run = root / "killed"
    cmd = [sys.executable, "-m", "ovip.cli", "train", "--config", str(recipe), "--train.output_dir", str(run)]
    proc = subprocess.Popen(cmd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    latest = run / "checkpoints" / "latest"
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and latest.read_text().strip() != "step-000000":
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make the test run longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    out = run_ovip(["train", "--resume", str(run)], environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = adapter(full), adapter(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    full_metrics = (full / "metrics.jsonl").read_text().splitlines()
    resumed_metrics = (run / "metrics.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}  # noqa: E731
    assert [strip(x) for x in resumed_metrics] == [strip(x) for x in full_metrics]


def test_quickstart_runs_every_stage(env):
    """`--seeds 2`: the quickstart spec through the experiment runner on two base models (world.pretrain.seed 0
    and 1) x the recipe's training seed: the oracle and each base model evaluated, one run folder and
    evaluation per base model, mean ± std and the spread over base models in the table, the verdict of OViP
    against its base, the report of both runs. The folder starts afresh: a stale run of the spec is deleted,
    other files are kept."""
    root, recipe, environ = env
    run = root / "quick"
    (run / "ovip" / "pretrain-7").mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    out = run_ovip(
        ["quickstart", "--config", str(recipe), "--train.output_dir", str(run), "--seeds", "2"],
        environ,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (run / "ovip" / "pretrain-7").exists() and (run / "notes.txt").read_text() == "mine"
    result = json.loads((run / "results.json").read_text())
    splits = ("amber_gen", "amber_dis", "objecthal", "mmhal", "llava_bench", "general")
    assert sorted(result["bases"]) == ["0", "1"]
    assert all(split in b["eval"] for b in result["bases"].values() for split in splits)
    assert [(r["base_model"], r["seed"]) for r in result["runs"]] == [(0, 3), (1, 3)]  # the recipe's seed
    for r in result["runs"]:
        assert (
            all(split in r["eval"] for split in splits) and "parse_rate" in r["eval"]["amber_gen"]["fluency"]
        )
        folder = run / "ovip" / f"pretrain-{r['base_model']}" / "seed-3"
        assert (folder / "run" / "checkpoints" / "latest").exists() and (
            folder / "run" / "experiences.jsonl"
        ).exists()
        assert (folder / "items" / "amber_gen.jsonl").exists()
        assert r["decoding"]["max_new_tokens"] == 12  # the recipe's eval decoding, recorded
    hris = result["summary"]["cells"]["ovip"]["HRI (oracle ref.)"]
    assert len(hris) == 2 and all(h == h for h in hris)  # numbers, not NaN
    assert {r["metric"] for r in result["paired"]["rows"]} == {
        "chair",
        "cover",
        "objecthal_chair_r",
        "partner_rate",
        "hri",
    }
    assert (
        "HRI" in out.stdout
        and "AMBER-gen CHAIR" in out.stdout
        and "OViP improves on its base model" in out.stdout
    )
    table = (run / "results.md").read_text()
    assert "±" in table and "parse rate" in table and "ovip: spread over base models" in table
    assert "Regenerate: `ovip quickstart --seeds 2`" in table and "Machine: runs on " in table
    # it ends with the report of both runs, overlaid, and says where it is
    assert out.stdout.strip().splitlines()[-1] == f"report: {run / 'report.html'}"
    page = (run / "report.html").read_text()
    assert 'id="fig-losses"' in page and "Experiment <code>quickstart</code>" in page
    assert 'data-run="pretrain-0/seed-3/run"' in page and 'data-run="pretrain-1/seed-3/run"' in page
