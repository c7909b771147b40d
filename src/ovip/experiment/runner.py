"""Run an experiment spec run by run: train, evaluate, write `result.json`; a finished run is never rerun.

Layout of OUT (default `experiments/<name>`):
    spec.yaml                                  the spec as run
    oracle/result.json, oracle/items/          the reference answers scored (HRI's reference), once
    base/pretrain-<b>/result.json, items/      the untrained base model b (world.pretrain.seed b)
    <cell>/pretrain-<b>/seed-<s>/run/          the training run folder (metrics.jsonl, experiences.jsonl, ...)
    <cell>/pretrain-<b>/seed-<s>/result.json   its evaluation, cost (policy samples, optimizer steps, wall and
                                               CPU seconds), curve points, the machine it ran on
    <cell>/pretrain-<b>/seed-<s>/items/        one JSONL per benchmark: what each item's metrics counted
    <cell>/pretrain-<b>/seed-<s>/analyses.json the paper's analyses of the run (`ovip analyze`; analysis/)
    results.json, results.md, *.png            written by `ovip.experiment.report` from the result files

An interrupted run resumes from its run folder's last checkpoint (`ovip train --resume` semantics); a run
whose result.json exists is skipped, unless the experiment starts `fresh` (`ovip quickstart` does): then the
spec's own folders and files in OUT are deleted first, and nothing else. Every run is fixed by its config and
seeds, never by time. Each result records the machine (CPU, torch build, threads): the base model's weights
depend on the float order, so a table is only comparable with one from the same kind of machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from ovip.config import Config, ConfigError, load
from ovip.experiment.spec import ExperimentSpec


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def machine() -> dict:
    """Where this process computes: CPU model, cores, torch build, torch threads (they set the float order)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
    }


def _evaluate(cfg: Config, adapter: Path | None, split_dirs: dict, folder: Path | None = None) -> dict:
    """The world suite of the policy (the base model with `adapter`): {"eval": metrics}, and with a `folder`
    the item records written to FOLDER/items/<split>.jsonl ({"items": {split: file}})."""
    from ovip.eval.generate import make_generate_fn
    from ovip.policy.model import Policy
    from ovip.world.bench import evaluate_world_items, write_items
    from ovip.world.resolve import model_path

    policy = Policy.from_pretrained(
        model_path(cfg),
        dtype=cfg.model.dtype,
        device=cfg.model.device,
        adapter=str(adapter) if adapter else None,
        finetune="none",
    )
    generate = make_generate_fn(policy, cfg.eval)
    metrics, items = evaluate_world_items(generate, split_dirs, batch_size=cfg.eval.batch_size)
    if folder is None:
        return {"eval": metrics}
    names = write_items(folder / "items", items)
    return {
        "eval": metrics,
        "decoding": asdict(cfg.eval),
        "items": {s: f"items/{name}" for s, name in names.items()},
    }


def _eval_dirs(cfg: Config) -> dict:
    from ovip.world.resolve import world_splits
    from ovip.world.suite import EVAL_SPLITS

    return {s: p for s, p in world_splits(cfg, list(EVAL_SPLITS)).items() if s in EVAL_SPLITS}


def run_oracle(spec: ExperimentSpec, out: Path) -> dict:
    """The world's reference answers scored on the evaluation splits: HRI's reference (once per experiment;
    the evaluation splits do not depend on the base model)."""
    from ovip.world.bench import evaluate_world_items, write_items
    from ovip.world.suite import oracle_generate_fn

    folder = out / "oracle"
    if (folder / "result.json").exists():
        return json.loads((folder / "result.json").read_text())
    cell, base, seed = spec.runs()[0]
    dirs = _eval_dirs(load(spec.recipe, spec.overrides_for(cell, base, seed)))
    metrics, items = evaluate_world_items(oracle_generate_fn(dirs), dirs, progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    names = write_items(folder / "items", items)
    result = {"eval": metrics, "items": {s: f"items/{n}" for s, n in names.items()}, "folder": "oracle"}
    _write(folder / "result.json", result)
    return result


def _pretraining(path: str) -> dict:
    """What the base model's pretrain.json says about how it was built (threads, torch, device, time)."""
    info_path = Path(path) / "pretrain.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    keys = ("fingerprint", "threads", "torch", "device", "wall_s", "loss_last50")
    return {k: info[k] for k in keys if k in info}


def run_base(spec: ExperimentSpec, base: int, out: Path) -> dict:
    """Base model `base` (world.pretrain.seed), untrained, on the evaluation splits; pretrained first if it is
    not in the cache."""
    from ovip.world.resolve import model_path

    folder = out / "base" / f"pretrain-{base}"
    if (folder / "result.json").exists():
        return json.loads((folder / "result.json").read_text())
    cfg = load(spec.recipe, spec.overrides_for(next(iter(spec.cells)), base, spec.seeds[0]))
    folder.mkdir(parents=True, exist_ok=True)
    path = model_path(cfg)
    result = {
        "base_model": base,
        "model": path,
        "pretraining": _pretraining(path),
        "machine": machine(),
        **_evaluate(cfg, None, _eval_dirs(cfg), folder),
        "folder": f"base/pretrain-{base}",
    }
    _write(folder / "result.json", result)
    return result


def _cost_at(run_dir: Path, samples_per_prompt: int, step: int | None = None) -> dict:
    """Prompts, policy samples (prompts x samples per prompt), optimizer steps and stage seconds (the sum of
    the `time/*` metrics) spent up to optimizer step `step` (the whole run when None)."""
    prompts, steps, seconds = 0, 0, 0.0
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        m = json.loads(line)
        if step is not None and m.get("step", 0) > step:
            break
        prompts, steps = m.get("prompts", prompts), m.get("step", steps)
        seconds += sum(v for k, v in m.items() if k.startswith("time/") and k != "time/wall" and v)
    return {
        "prompts": prompts,
        "samples": prompts * samples_per_prompt,
        "steps": steps,
        "stage_seconds": round(seconds, 2),
    }


def samples_per_prompt(cfg: Config) -> int:
    """Responses the policy samples per prompt: k, or none for supervised training on the references."""
    from ovip.train.methods import objective_of

    return cfg.rollout.k if objective_of(cfg).judged else 0


def run_folder(out: Path, cell: str, base: int, seed: int) -> Path:
    return out / cell / f"pretrain-{base}" / f"seed-{seed}"


def run_cell(spec: ExperimentSpec, cell: str, base: int, seed: int, out: Path) -> dict:
    """Train and evaluate one run (cell, base model, seed); returns its result (read back when it is done)."""
    from ovip.policy.model import resolve_adapter
    from ovip.train import checkpoint
    from ovip.train.run import resume, train

    folder = run_folder(out, cell, base, seed)
    path = folder / "result.json"
    if path.exists():
        return json.loads(path.read_text())
    run_dir = folder / "run"
    overrides = spec.overrides_for(cell, base, seed) + ["--train.output_dir", str(run_dir)]
    curve = cell in spec.curves.cells and (base, seed) == (spec.base_models[0], spec.seeds[0])
    if curve:
        overrides += ["--train.keep_checkpoints", "0"]
    cfg = load(spec.recipe, overrides)
    wall, cpu = time.perf_counter(), time.process_time()
    resumed = checkpoint.latest(run_dir) is not None  # an interrupted run continues where it stopped
    summary = resume(run_dir) if resumed else train(cfg, overwrite=True)
    cost = {
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "resumed": resumed,
        **_cost_at(run_dir, samples_per_prompt(cfg)),
    }
    dirs = _eval_dirs(cfg)
    result = {
        "cell": cell,
        "base_model": base,
        "seed": seed,
        "folder": str(folder.relative_to(out)),
        "overrides": overrides,
        "machine": machine(),
        "train": summary,
        "cost": cost,
        **_evaluate(cfg, resolve_adapter(run_dir), dirs, folder),
    }
    if curve:
        result["curve"] = _curve(cfg, run_dir, dirs, spec.curves.points)
    _write(path, result)
    return result


def _curve(cfg: Config, run_dir: Path, dirs: dict, points: int) -> list[dict]:
    """Evaluations of `points` checkpoints spread evenly over the run (the last one is the final model)."""
    from ovip.train import checkpoint

    saved = checkpoint.checkpoints(run_dir)
    if not saved:
        return []
    picks = sorted({saved[round(i * (len(saved) - 1) / max(1, points - 1))] for i in range(points)})
    out = []
    for path in picks:
        step = int(path.name.split("-")[1])
        out.append(
            {
                "step": step,
                **_cost_at(run_dir, samples_per_prompt(cfg), step),
                "eval": _evaluate(cfg, path / "adapter", dirs)["eval"],
            }
        )
    return out


def run_analyses(spec: ExperimentSpec, folder: Path) -> dict:
    """The analyses of one finished run (`ovip.analysis`), cached in `analyses.json`: the training dynamics
    (first and last window that sampled) and the negative images' quality always, the mass shift when the spec asks."""
    from ovip.analysis.dynamics import analyze_dynamics
    from ovip.analysis.negatives import analyze_negatives

    path, run_dir, out = folder / "analyses.json", folder / "run", folder / "analysis"
    result = json.loads(path.read_text()) if path.exists() else {}
    if not (run_dir / "metrics.jsonl").exists():
        return result
    if "dynamics" not in result:
        windows = analyze_dynamics(run_dir, out)["windows"]
        sampled = [w for w in windows if w["mean_distinct"] is not None] or windows  # offline: one pass
        result["dynamics"] = {"first": sampled[0], "last": sampled[-1]}
    if "negatives" not in result:
        try:
            negatives = analyze_negatives(run_dir, out)
            result["negatives"] = {**negatives["all"], "undetermined": negatives["undetermined"]}
        except ValueError as e:  # negatives not drawn by the world renderer
            result["negatives"] = {"skipped": str(e)}
    if spec.analyses.mass_shift and "mass_shift" not in result:
        from ovip.analysis.mass_shift import analyze_mass_shift
        from ovip.policy.model import resolve_adapter

        try:
            resolve_adapter(run_dir)
        except (FileNotFoundError, ValueError) as e:  # e.g. a full fine-tune: no adapter to switch off
            result["mass_shift"] = {"skipped": str(e)}
        else:
            a = spec.analyses
            result["mass_shift"] = analyze_mass_shift(run_dir, out, n_prompts=a.prompts, k=a.k)["shift"]
    _write(path, result)
    return result


def clear(spec: ExperimentSpec, out: Path) -> None:
    """Delete what `run_experiment` writes for `spec` in OUT (its folders and report files), nothing else."""
    for name in ("oracle", "base", *spec.cells):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in ("spec.yaml", "results.json", "results.md", "efficiency.png"):
        (out / name).unlink(missing_ok=True)


def run_experiment(
    spec: ExperimentSpec, out: Path, progress=print, fresh: bool = False, command: str | None = None
) -> dict:
    """Every base model and every cell x base model x seed of `spec` (finished ones read back unless `fresh`),
    then the report; returns the results. `command` regenerates them (the report prints it)."""
    import yaml

    from ovip.experiment.report import write_report

    cell, base, seed = spec.runs()[0]
    cfg = load(spec.recipe, spec.overrides_for(cell, base, seed))  # a bad recipe or override stops here
    if cfg.model.path != "world" and len(spec.base_models) > 1:
        raise ConfigError(
            f"experiment {spec.name!r}: base_models vary the built-in world's pretraining seed, but the "
            f"recipe's model.path is {cfg.model.path!r}; give one base model"
        )
    if fresh:
        clear(spec, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.yaml").write_text(yaml.safe_dump(asdict(spec), sort_keys=False))
    progress(f"experiment {spec.name}: the oracle (the reference answers) on the evaluation splits")
    oracle = run_oracle(spec, out)
    bases = {}
    for base in spec.base_models:
        progress(f"experiment {spec.name}: base model {base} (world.pretrain.seed {base}), before training")
        bases[base] = run_base(spec, base, out)
    results = []
    for cell, base, seed in spec.runs():
        progress(f"experiment {spec.name}: {cell}, base model {base}, train.seed {seed}")
        result = run_cell(spec, cell, base, seed, out)
        folder = run_folder(out, cell, base, seed)
        results.append({**result, "analyses": run_analyses(spec, folder)})
    return write_report(spec, out, bases, oracle, results, command=command)
