"""Sampling statistics over training (Appendix B.5, Fig. 10) from a run folder's metrics.jsonl.

The loop keeps only the distinct responses of each prompt (`train.stages.Rollout`), not the k sampled texts,
so the per-prompt groups that `analysis.stats.sampling_stats` takes are not on disk. Each metrics line instead
records its window's counters: `rollout/distinct_per_prompt` (mean distinct responses per prompt) and
`rollout/duplicate_rate` (share of prompts with fewer than ceil(14 k / 16) distinct of k samples, the paper's
14 of 16; `train.counters.min_distinct`), over the prompts sampled since the previous line (the difference of
`prompts/total`). This module pools those lines into windows of optimizer steps, weighting each line by its
prompts, which gives exactly `sampling_stats` over the window's prompts. Runs logged before the duplicate
counter existed have no duplicate rate (None).

Left out: the paper samples a fixed probe set at temperature 1.2 at each point; here the numbers are those of
the training rollouts themselves (the run's own temperature, each window's own prompts), so a window without
rollouts (offline methods after their one sampling pass) has none, and `sft`, which samples nothing, has
none at all. Perplexity (Fig. 11) is not recorded by the loop.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ovip.analysis.output import markdown_table, pyplot, write_outputs
from ovip.train.counters import min_distinct


@dataclass(frozen=True)
class Window:
    """Optimizer steps first..last; `prompts` sampled in them; duplicate_rate in % (None: not recorded)."""

    first_step: int
    last_step: int
    prompts: int
    mean_distinct: float | None
    duplicate_rate: float | None


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: not a training run folder, or no step finished yet")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def windows(lines: list[dict], steps: int) -> list[Window]:
    """Pool metrics lines into windows of `steps` optimizer steps (by step number: 1..steps, steps+1..)."""
    if steps < 1:
        raise ValueError(f"steps per window must be >= 1, got {steps}")
    groups: dict[int, list[tuple[dict, int]]] = {}
    before = 0
    for m in lines:
        total = m.get("prompts/total", m.get("prompts", before))
        groups.setdefault((m["step"] - 1) // steps, []).append((m, total - before))
        before = total
    out = []
    for _, group in sorted(groups.items()):
        n = sum(p for _, p in group)
        recorded = [(m, p) for m, p in group if m.get("rollout/duplicate_rate") is not None]

        def mean(key: str, rows) -> float | None:
            weight = sum(p for _, p in rows)
            return sum(m[key] * p for m, p in rows) / weight if weight else None

        dup = mean("rollout/duplicate_rate", recorded) if len(recorded) == len(group) else None
        out.append(
            Window(
                group[0][0]["step"],
                group[-1][0]["step"],
                n,
                mean("rollout/distinct_per_prompt", group),
                None if dup is None else 100.0 * dup,
            )
        )
    return out


def analyze_dynamics(run_dir: Path, output: Path | None = None, n_windows: int = 10) -> dict:
    """Write dynamics.{json,md,png} under `output` (default RUN_DIR/analysis); returns the JSON's content."""
    run_dir = Path(run_dir)
    lines = read_metrics(run_dir)
    steps = max(1, math.ceil(len(lines) / n_windows))
    k, method = _rollout(run_dir)
    rows = windows(lines, steps)
    if not any(m.get("rollout/distinct_per_prompt") for m in lines):
        # a method that samples nothing (SFT trains on the references): the counters stay at zero, not measured
        rows = [Window(w.first_step, w.last_step, w.prompts, None, None) for w in rows]
    data = {
        "analysis": "dynamics",
        "run": str(run_dir),
        "k": k,
        "method": method,
        "min_distinct": min_distinct(k) if k else None,
        "steps_per_window": steps,
        "windows": [asdict(w) for w in rows],
    }
    columns = ["first_step", "last_step", "prompts", "mean_distinct", "duplicate_rate"]
    md = (
        f"# Sampling statistics over training (Fig. 10)\n\nRun `{run_dir}`, k = {k}; duplicate rate: % of prompts "
        f"with fewer than {data['min_distinct']} distinct of {k} samples; windows of {steps} optimizer steps.\n\n"
        + markdown_table(columns, [asdict(w) for w in rows])
    )
    paths = write_outputs(Path(output or run_dir / "analysis"), "dynamics", data, md, _figure(rows, k))
    return {**data, "files": {key: str(p) for key, p in paths.items()}}


def _rollout(run_dir: Path) -> tuple[int | None, str | None]:
    """(rollout.k, train.method) of the run's config.yaml (None where it is absent)."""
    import yaml

    path = run_dir / "config.yaml"
    data = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    return data.get("rollout", {}).get("k"), data.get("train", {}).get("method")


def _figure(rows: list[Window], k: int | None):
    plt = pyplot()
    fig, left = plt.subplots(figsize=(6, 4), constrained_layout=True)
    xs = [w.last_step for w in rows]
    dup = [(x, w.duplicate_rate) for x, w in zip(xs, rows, strict=True) if w.duplicate_rate is not None]
    if dup:
        left.plot(*zip(*dup, strict=True), color="tab:blue", marker="o", label="duplicate rate")
    left.set_xlabel("optimizer step")
    left.set_ylabel("duplicate response rate (%)", color="tab:blue")
    right = left.twinx()
    dist = [(x, w.mean_distinct) for x, w in zip(xs, rows, strict=True) if w.mean_distinct is not None]
    if dist:
        right.plot(*zip(*dist, strict=True), color="tab:red", marker="s", label="distinct responses")
    right.set_ylabel(f"mean distinct responses of {k}", color="tab:red")
    left.set_title("Sampling statistics during training" + ("" if dup else " (duplicate rate not recorded)"))
    left.grid(alpha=0.3)
    return fig
