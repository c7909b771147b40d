"""Run an experiment spec cell by cell: train, evaluate, write `result.json`; a finished cell is never rerun.

Layout of OUT (default `experiments/<name>`):
    base/result.json                 the untrained model's evaluation (and the oracle's, for HRI)
    <cell>/seed-<s>/run/             the training run folder (metrics.jsonl, experiences.jsonl, checkpoints/)
    <cell>/seed-<s>/result.json      its evaluation, cost (policy samples, wall and CPU seconds), curve points
    <cell>/seed-<s>/analyses.json    the paper's analyses of the run (`ovip analyze`; files in analysis/)
    results.json, results.md, *.png  written by `ovip.experiment.report` from the result files

An interrupted cell resumes from its run folder's last checkpoint (`ovip train --resume` semantics); a cell
whose result.json exists is skipped. Every run is fixed by its config and seed, never by time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ovip.config import Config, load
from ovip.experiment.spec import ExperimentSpec


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def _evaluate(cfg: Config, adapter: Path | None, split_dirs: dict) -> dict:
    from ovip.policy.model import Policy
    from ovip.world.resolve import model_path
    from ovip.world.suite import evaluate_policy

    policy = Policy.from_pretrained(
        model_path(cfg),
        dtype=cfg.model.dtype,
        device=cfg.model.device,
        adapter=str(adapter) if adapter else None,
        finetune="none",
    )
    return evaluate_policy(policy, cfg.eval, split_dirs)


def _eval_dirs(cfg: Config) -> dict:
    from ovip.world.resolve import world_splits
    from ovip.world.suite import EVAL_SPLITS

    return {s: p for s, p in world_splits(cfg, list(EVAL_SPLITS)).items() if s in EVAL_SPLITS}


def run_base(spec: ExperimentSpec, out: Path) -> dict:
    """The untrained model and the oracle on the evaluation splits (once per experiment)."""
    from ovip.world.bench import evaluate_world
    from ovip.world.suite import oracle_generate_fn

    path = out / "base" / "result.json"
    if path.exists():
        return json.loads(path.read_text())
    cfg = load(spec.recipe, spec.overrides_for(next(iter(spec.cells)), spec.seeds[0]))
    dirs = _eval_dirs(cfg)
    result = {
        "eval": _evaluate(cfg, None, dirs),
        "oracle": evaluate_world(oracle_generate_fn(dirs), dirs, progress=False),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, result)
    return result


def _cost_at(run_dir: Path, samples_per_prompt: int, step: int | None = None) -> dict:
    """Prompts, policy samples (prompts x samples per prompt) and stage seconds (the sum of the `time/*`
    metrics) spent up to optimizer step `step` (the whole run when None)."""
    prompts, seconds = 0, 0.0
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        m = json.loads(line)
        if step is not None and m.get("step", 0) > step:
            break
        prompts = m.get("prompts", prompts)
        seconds += sum(v for k, v in m.items() if k.startswith("time/") and k != "time/wall" and v)
    return {"prompts": prompts, "samples": prompts * samples_per_prompt, "stage_seconds": round(seconds, 2)}


def samples_per_prompt(cfg: Config) -> int:
    """Responses the policy samples per prompt: k, or none for supervised training on the references."""
    return 0 if getattr(cfg.train, "method", "ovip") == "sft" else cfg.rollout.k


def run_cell(spec: ExperimentSpec, cell: str, seed: int, out: Path) -> dict:
    """Train and evaluate one (cell, seed); returns its result (read back when it is already done)."""
    from ovip.policy.model import resolve_adapter
    from ovip.train import checkpoint
    from ovip.train.run import resume, train

    folder = out / cell / f"seed-{seed}"
    path = folder / "result.json"
    if path.exists():
        return json.loads(path.read_text())
    run_dir = folder / "run"
    overrides = spec.overrides_for(cell, seed) + ["--train.output_dir", str(run_dir)]
    curve = cell in spec.curves.cells and seed == spec.seeds[0]
    if curve:
        overrides += ["--train.keep_checkpoints", "0"]
    cfg = load(spec.recipe, overrides)
    wall, cpu = time.perf_counter(), time.process_time()
    resumed = checkpoint.latest(run_dir) is not None  # an interrupted cell continues where it stopped
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
        "seed": seed,
        "overrides": overrides,
        "train": summary,
        "cost": cost,
        "eval": _evaluate(cfg, resolve_adapter(run_dir), dirs),
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
                "eval": _evaluate(cfg, path / "adapter", dirs),
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


def run_experiment(spec: ExperimentSpec, out: Path, progress=print) -> dict:
    """Every cell x seed of `spec` (finished ones read back), then the report; returns the results."""
    from ovip.experiment.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    base = run_base(spec, out)
    results = []
    for cell in spec.cells:
        for seed in spec.seeds:
            progress(f"experiment {spec.name}: {cell}, seed {seed}")
            result = run_cell(spec, cell, seed, out)
            results.append({**result, "analyses": run_analyses(spec, out / cell / f"seed-{seed}")})
    return write_report(spec, out, base, results)
