"""`ovip quickstart`: the whole method on the built-in world, on a CPU, in minutes — the built-in experiment
spec `quickstart` (configs/experiments/quickstart.yaml) run by `ovip.experiment.runner`.

world splits -> base model (pretrained once, then cached) -> evaluation before -> OViP, one epoch -> evaluation
after, on `seeds` base models (world.pretrain.seed p, p+1, ..., p the recipe's; each a different cached
model) x 1 training seed (the recipe's train.seed). The output folder is the recipe's train.output_dir,
started afresh (`runner.clear`: the spec's own folders and files only). It prints the before/after table of
every world benchmark (mean ± std over the runs, the spread over base models, the oracle, HRI against the
oracle), the verdict of "OViP improves on its base model", and ends with the HTML report of the runs.

HRI needs base and reference performances (Appendix A.1). The base is the model before training, as in the
paper. The paper's reference is its best run (OViP_2ep); the world has something better: the evaluation's
reference answers themselves, scored by the same benchmark code (the oracle). HRI here is therefore 2 x the
sum over the five benchmarks of the share of the base-to-oracle gap that training closed.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ovip.config import load
from ovip.experiment.report import PAIRED_HEADERS, grid
from ovip.experiment.runner import run_experiment, run_folder
from ovip.experiment.spec import load_spec, override_map


def quickstart(recipe: str, overrides: list[str], seeds: int = 1) -> dict:
    """Run the quickstart spec on `seeds` base models; returns the experiment's results (`report.write_report`)
    with `report` (the HTML report's path) added."""
    from ovip.report import build_report

    cfg = load(recipe, overrides)
    spec = load_spec("quickstart")
    spec.recipe = recipe
    spec.overrides = {**spec.overrides, **override_map(overrides)}
    first = cfg.world.pretrain.seed
    spec.base_models = [first + i for i in range(seeds)]
    spec.seeds = [cfg.train.seed]
    out = Path(cfg.train.output_dir)
    command = "ovip quickstart" + (f" --seeds {seeds}" if seeds > 1 else "")
    console = Console()
    if not console.is_terminal:  # a log file: the table's full width rather than 80 columns
        console = Console(width=160)
    data = run_experiment(spec, out, progress=console.rule, fresh=True, command=command)
    columns, rows = data["before_after"]
    console.print(_table(f"OViP on the built-in world: {grid(spec)}", columns, rows))
    verdicts = [
        [r["claim"], PAIRED_HEADERS[r["metric"]], _difference(r), r["verdict"]]
        for r in data["paired"]["rows"]
    ]
    console.print(
        _table("Paired with its base model", ["claim", "metric", "A − B [95%]", "verdict"], verdicts)
    )
    console.print(f"results: {out / 'results.md'}, {out / 'results.json'}", highlight=False, soft_wrap=True)
    runs = [run_folder(out, c, b, s) / "run" for c, b, s in spec.runs()]
    data["report"] = str(build_report(runs, out / "report.html", eval_paths=[out]))
    console.print(f"report: {data['report']}", highlight=False, soft_wrap=True)  # a path to copy, unwrapped
    return data


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*row)
    return table


def _difference(row: dict) -> str:
    bounds = "[-]" if row["interval"] is None else "[{:+.2f}, {:+.2f}]".format(*row["interval"])
    return f"{row['difference']:+.2f} {bounds}"
