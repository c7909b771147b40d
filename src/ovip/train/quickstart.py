"""`ovip quickstart`: the whole method on the built-in world, on a CPU, in minutes.

world splits -> base model (cached) -> evaluation before -> OViP, one epoch -> evaluation after, then a
before/after table of the world benchmarks and HRI (Eq. 7). Evaluation scenes come from seed ranges that
training never uses (`ovip.world.config.scene_seed`).

HRI needs base and reference performances (Appendix A.1). The base is the model before training, as in the
paper. The paper's reference is its best run (OViP_2ep); the world has something better: the reference answers
themselves, scored by the same benchmark code (the oracle). HRI here is therefore 2 x the sum over the five
benchmarks of the share of the base-to-oracle gap that training closed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from ovip.config import Config, to_dict
from ovip.eval.metrics import hri
from ovip.train.setup import model_path, world_splits

EVAL_SPLITS = ("amber_gen", "amber_dis", "objecthal", "mmhal", "llava_bench", "general")
ROWS = [  # (label, split, metric, higher is better)
    ("AMBER-gen CHAIR", "amber_gen", "chair", False),
    ("AMBER-gen Cover", "amber_gen", "cover", True),
    ("AMBER-gen Hal", "amber_gen", "hal", False),
    ("AMBER-gen F1", "amber_gen", "f1", True),
    ("AMBER-gen prior share", "amber_gen", "prior_share", False),
    ("AMBER-dis F1", "amber_dis", "f1", True),
    ("ObjectHal CHAIR_r", "objecthal", "chair_r", False),
    ("ObjectHal F1", "objecthal", "f1", True),
    ("MMHal score", "mmhal", "score", True),
    ("LLaVA-Bench score", "llava_bench", "score", True),
    ("General accuracy", "general", "accuracy", True),
]


def _image_key(image) -> str:
    return hashlib.sha1(image.convert("RGB").tobytes()).hexdigest()


def oracle_generate_fn(split_dirs: dict[str, Path]):
    """generate_fn that answers every world question with its reference answer (the HRI reference)."""
    from ovip.data import load_examples
    from ovip.data.images import load_image

    answers = {}
    for folder in split_dirs.values():
        for e in load_examples(Path(folder) / "data.jsonl"):
            answers[(e.query, _image_key(load_image(e)))] = e.reference
    return lambda images, queries: [answers[(q, _image_key(im))] for im, q in zip(images, queries, strict=True)]


def evaluate(policy, cfg: Config, split_dirs) -> dict:
    from ovip.eval.generate import make_generate_fn
    from ovip.world.bench import evaluate_world

    return evaluate_world(make_generate_fn(policy, cfg.eval), split_dirs, batch_size=cfg.eval.batch_size)


def table(before: dict, after: dict, oracle: dict, hri_value: float) -> Table:
    t = Table(title="OViP on the built-in world (evaluation scenes never seen in training)")
    for col in ("metric", "base", "OViP", "change", "oracle"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for label, split, metric, higher in ROWS:
        if metric not in before.get(split, {}):
            continue
        b, a, o = before[split][metric], after[split][metric], oracle[split].get(metric, float("nan"))
        better = (a > b) if higher else (a < b)
        arrow = "[green]" if better else "[red]" if a != b else ""
        t.add_row(label, f"{b:.2f}", f"{a:.2f}", f"{arrow}{a - b:+.2f}", f"{o:.2f}")
    t.add_row("HRI (Eq. 7, oracle reference)", "0.00", f"{hri_value:.2f}", "", "10.00")
    return t


def quickstart(cfg: Config) -> dict:
    from ovip.policy.model import Policy, resolve_adapter
    from ovip.train.run import train

    console = Console()
    run_dir = Path(cfg.train.output_dir)
    console.rule("1. the built-in world")
    splits = world_splits(cfg, ["preference", *EVAL_SPLITS])
    eval_dirs = {s: splits[s] for s in EVAL_SPLITS}
    console.print(f"splits under {splits['preference'].parent}")
    console.rule("2. base model (pretrained once, then cached)")
    base_path = model_path(cfg)
    console.print(f"base model: {base_path}")
    console.rule("3. evaluation before training")
    base = Policy.from_pretrained(base_path, dtype=cfg.model.dtype, device=cfg.model.device, finetune="none")
    before = evaluate(base, cfg, eval_dirs)
    del base
    console.rule("4. OViP, one epoch (Algorithm 1)")
    summary = train(cfg, overwrite=True)  # a quickstart starts its run folder afresh
    console.rule("5. evaluation after training")
    adapter = resolve_adapter(run_dir)
    trained = Policy.from_pretrained(base_path, dtype=cfg.model.dtype, device=cfg.model.device, adapter=str(adapter),
                                     finetune="none")
    after = evaluate(trained, cfg, eval_dirs)
    from ovip.world.bench import evaluate_world

    oracle = evaluate_world(oracle_generate_fn(eval_dirs), eval_dirs, progress=False)
    hri_value = hri(after["hri_inputs"], before["hri_inputs"], oracle["hri_inputs"])
    console.print(table(before, after, oracle, hri_value))
    result = {"before": before, "after": after, "oracle": oracle, "hri": hri_value, "train": summary,
              "adapter": str(adapter), "base_model": base_path}
    (run_dir / "quickstart.json").write_text(json.dumps(result, indent=2, default=str))
    (run_dir / "quickstart-config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    console.print(f"run folder: {run_dir} (metrics.jsonl, experiences.jsonl, images/, checkpoints/, quickstart.json)")
    return result
