"""`ovip quickstart`: the whole method on the built-in world, on a CPU, in minutes.

world splits -> base model (cached) -> evaluation before -> OViP, one epoch per training seed -> evaluation
after each, then a before/after table of the world benchmarks, their fluency statistics and HRI (Eq. 7), as
mean +- std over the training seeds. Evaluation scenes come from seed ranges that training never uses
(`ovip.config.world.scene_seed`); every evaluation uses the recipe's `eval` decoding, recorded in the output.

HRI needs base and reference performances (Appendix A.1). The base is the model before training, as in the
paper. The paper's reference is its best run (OViP_2ep); the world has something better: the evaluation's
reference answers themselves, scored by the same benchmark code (the oracle). HRI here is therefore 2 x the
sum over the five benchmarks of the share of the base-to-oracle gap that training closed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from ovip.config import Config, to_dict
from ovip.eval.metrics import hri
from ovip.world.resolve import model_path, world_splits
from ovip.world.suite import EVAL_SPLITS, evaluate_policy, oracle_generate_fn

ROWS = [  # (label, split, metric path, higher is better); "fluency/x" reads the split's fluency block
    ("AMBER-gen CHAIR", "amber_gen", "chair", False),
    ("AMBER-gen CHAIR (once per object)", "amber_gen", "chair_unique", False),
    ("AMBER-gen Cover", "amber_gen", "cover", True),
    ("AMBER-gen Hal", "amber_gen", "hal", False),
    ("AMBER-gen F1", "amber_gen", "f1", True),
    ("AMBER-gen prior share", "amber_gen", "prior_share", False),
    ("partner hallucination rate, trained priors", "amber_gen", "partner_rate", False),
    ("partner hallucination rate, held-out prior", "amber_gen", "partner_rate_heldout", False),
    ("AMBER-dis F1 (constant 'no': see json)", "amber_dis", "f1", True),
    ("AMBER-dis accuracy on 'yes' / 'no' questions", "amber_dis", ("yes_accuracy", "no_accuracy"), True),
    ("ObjectHal CHAIR_r", "objecthal", "chair_r", False),
    ("ObjectHal F1", "objecthal", "f1", True),
    ("MMHal score", "mmhal", "score", True),
    ("LLaVA-Bench score", "llava_bench", "score", True),
    ("General accuracy", "general", "accuracy", True),
    ("AMBER-gen parse rate", "amber_gen", "fluency/parse_rate", True),
    ("AMBER-gen repeated mentions / mention", "amber_gen", "fluency/mention_repetition", False),
    ("AMBER-gen repeated 3-grams", "amber_gen", "fluency/rep_3", False),
    ("AMBER-gen words per answer", "amber_gen", "fluency/words", None),
    ("AMBER-gen cut at max_new_tokens", "amber_gen", "fluency/cut", False),
    ("all splits: parse rate", "all", "fluency/parse_rate", True),
]


def evaluate(policy, cfg: Config, split_dirs) -> dict:
    return evaluate_policy(policy, cfg.eval, split_dirs)


def value(result: dict, split: str, path) -> float | None:
    """A metric of one evaluation; `path` 'fluency/x' reads the fluency block, split 'all' averages splits."""
    if split == "all":
        vals = [value(result, s, path) for s in EVAL_SPLITS if s in result]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None
    block = result.get(split, {})
    for part in path.split("/"):
        block = block.get(part) if isinstance(block, dict) else None
    return block


def _fmt(xs: list[float | None]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}"


def rows(
    before: dict, afters: list[dict], oracle: dict, hris: list[float]
) -> list[tuple[str, str, str, str, str]]:
    """(metric, base, OViP mean ± std, change of the mean, oracle) for the table and for quickstart.md."""
    out = []
    for label, split, metric, higher in ROWS:
        label += {True: " ↑", False: " ↓", None: ""}[higher]  # the better direction, as papers mark it
        for path in metric if isinstance(metric, tuple) else (metric,):
            b = value(before, split, path)
            if b is None and split != "all":
                continue
            a = [value(r, split, path) for r in afters]
            mean = statistics.mean([x for x in a if x is not None]) if any(x is not None for x in a) else None
            change = "" if mean is None or b is None else f"{mean - b:+.2f}"
            name = label if not isinstance(metric, tuple) else f"{label} [{path}]"
            out.append((name, _fmt([b]), _fmt(a), change, _fmt([value(oracle, split, path)])))
    out.append(("HRI (Eq. 7, oracle reference)", "0.00", _fmt(hris), "", "10.00"))
    return out


def table(rows_: list[tuple], seeds: int) -> Table:
    t = Table(
        title=f"OViP on the built-in world ({seeds} training seed{'s' * (seeds > 1)}; evaluation scenes never "
        "seen in training)"
    )
    for col in ("metric", "base", "OViP" + (" (mean ± std)" if seeds > 1 else ""), "change", "oracle"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for r in rows_:
        t.add_row(*r)
    return t


def markdown(rows_: list[tuple], seeds: int) -> str:
    head = f"| metric | base | OViP ({seeds} seed{'s' * (seeds > 1)}) | change | oracle |\n| --- | ---: | ---: | ---: | ---: |\n"
    return head + "".join(f"| {' | '.join(r)} |\n" for r in rows_)


def quickstart(cfg: Config, seeds: int = 1) -> dict:
    """Run the quickstart; with `seeds` > 1 the OViP run is repeated with train.seed = seed, seed+1, ...
    into RUN_DIR/seed-<s>/, and the table reports mean ± std over them."""
    from ovip.policy.model import Policy, resolve_adapter
    from ovip.train.run import train
    from ovip.world.bench import evaluate_world

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
    oracle = evaluate_world(oracle_generate_fn(eval_dirs), eval_dirs, progress=False)
    afters, hris, runs = [], [], []
    for k in range(seeds):
        run_cfg = copy.deepcopy(cfg)
        run_cfg.train.seed = cfg.train.seed + k
        if seeds > 1:
            run_cfg.train.output_dir = str(run_dir / f"seed-{run_cfg.train.seed}")
        console.rule(f"4. OViP, one epoch (Algorithm 1), train.seed {run_cfg.train.seed}")
        summary = train(run_cfg, overwrite=True)  # a quickstart starts its run folders afresh
        console.rule("5. evaluation after training")
        adapter = resolve_adapter(run_cfg.train.output_dir)
        trained = Policy.from_pretrained(
            base_path, dtype=cfg.model.dtype, device=cfg.model.device, adapter=str(adapter), finetune="none"
        )
        after = evaluate(trained, cfg, eval_dirs)
        afters.append(after)
        hris.append(hri(after["hri_inputs"], before["hri_inputs"], oracle["hri_inputs"]))
        runs.append(
            {
                "seed": run_cfg.train.seed,
                "run_dir": run_cfg.train.output_dir,
                "adapter": str(adapter),
                "train": summary,
                "after": after,
                "hri": hris[-1],
            }
        )
    table_rows = rows(before, afters, oracle, hris)
    console.print(table(table_rows, seeds))
    run_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "before": before,
        "oracle": oracle,
        "runs": runs,
        "hri": hris,
        "base_model": base_path,
        "decoding": dataclasses.asdict(cfg.eval),
        "threads": _threads(),
    }
    (run_dir / "quickstart.json").write_text(json.dumps(result, indent=2, default=str))
    (run_dir / "quickstart.md").write_text(markdown(table_rows, seeds))
    (run_dir / "quickstart-config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    console.print(
        f"run folder: {run_dir} (quickstart.json, quickstart.md; per run: metrics.jsonl, "
        "experiences.jsonl, images/, checkpoints/)"
    )
    from ovip.report import build_report

    # this quickstart's run folders only (not an older run left in RUN_DIR); quickstart.json is found beside them
    result["report"] = str(build_report([r["run_dir"] for r in runs], run_dir / "report.html"))
    console.print(f"report: {result['report']}", highlight=False, soft_wrap=True)  # a path to copy, unwrapped
    return result


def _threads() -> int:
    import torch

    return torch.get_num_threads()
