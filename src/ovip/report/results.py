"""Evaluation results and experiment folders found beside the runs, as tables and files to show.

- `summary.json` of `ovip eval` (`{"benchmark", "metrics", "adapter", ...}`): one table per benchmark, one
  column per evaluation; the ones without an adapter (the model before training) come first. For `ovip eval
  world`, a sample of the per-item answers beside it too (`ovip.report.answers`).
- an experiment folder: any folder with `results.json` or `results.md` (`ovip experiment`, and `ovip
  quickstart`, which is an experiment). The report shows results.md (headings, paragraphs and pipe tables),
  results.json (as text) and every PNG / SVG figure in the folder. This is the contract for `ovip
  experiment`-style outputs: write those files and the report picks them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ovip.report.answers import answer_tables
from ovip.report.data import Table, fmt, number, read_json


@dataclass
class Experiment:
    path: Path
    results: object = None
    markdown: str | None = None
    figures: list[Path] = field(default_factory=list)


def _flatten(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    from ovip.eval_cli import flatten

    return flatten(metrics, prefix)


def evaluations(paths: list[Path]) -> dict[str, list[tuple[Path, dict, str]]]:
    """benchmark -> [(summary.json path, its record, a column label)] of the `ovip eval` summaries in `paths`,
    the ones without an adapter (the model before training) first."""
    by_benchmark: dict[str, list] = {}
    for path in paths:
        record = read_json(path)
        if isinstance(record, dict) and "benchmark" in record and isinstance(record.get("metrics"), dict):
            by_benchmark.setdefault(str(record["benchmark"]), []).append((path, record))

    def label(path: Path, record: dict) -> str:
        adapter = record.get("adapter")
        return f"{path.parent.name} ({'after: ' + Path(str(adapter)).name if adapter else 'before'})"

    out = {}
    for benchmark, found in by_benchmark.items():
        found.sort(key=lambda pr: (pr[1].get("adapter") is not None, str(pr[0])))
        out[benchmark] = [(p, r, label(p, r)) for p, r in found]
    return out


def eval_tables(paths: list[Path]) -> list[Table]:
    """One table per benchmark over the `ovip eval` summary.json files in `paths`."""
    tables = []
    for benchmark, found in evaluations(paths).items():
        labels = [label for _, _, label in found]
        values = [dict(_flatten(r["metrics"])) for _, r, _ in found]
        names = list(dict.fromkeys(n for v in values for n in v))
        change = len(found) == 2
        body = []
        for name in names:
            row = [name, *(fmt(v.get(name)) for v in values)]
            if change:
                a, b = (number(v.get(name)) for v in values)
                row.append("" if a is None or b is None else f"{b - a:+.4g}")
            body.append(row)
        tables.append(
            Table(
                f"ovip eval {benchmark}",
                ["metric", *labels, *(["change"] if change else [])],
                body,
                ", ".join(str(p) for p, _, _ in found),
            )
        )
    return tables


def read_experiment(path: Path) -> Experiment:
    results = read_json(path / "results.json") if (path / "results.json").is_file() else None
    md = path / "results.md"
    markdown = md.read_text(encoding="utf-8", errors="replace") if md.is_file() else None
    figures = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".svg") and p.is_file())
    return Experiment(path, results, markdown, figures)


def _walk(paths: list[Path], depth: int):
    """Every folder at or under `paths`, at most `depth` levels down, each once."""
    seen = set()
    stack = [(Path(p), depth) for p in paths]
    while stack:
        folder, left = stack.pop(0)
        if not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        yield folder
        if left > 0:
            stack += [
                (p, left - 1)
                for p in sorted(folder.iterdir())
                if p.is_dir() and p.name not in ("images", "checkpoints", "tensorboard", "wandb")
            ]


def find_results(
    paths: list[Path], run_dirs: list[Path], eval_paths: list[Path] = (), depth: int = 3
) -> tuple[list[Table], list[Experiment]]:
    """(tables, experiments) found at or under `paths`, beside the runs (the run folder and its parent) and at
    `eval_paths` (summary.json files, or folders: an experiment folder given there is found too)."""
    folders = list(_walk([*paths, *eval_paths], depth))
    folders += [f for r in run_dirs for f in (Path(r), Path(r).parent)]
    folders = list(dict.fromkeys(f.resolve() for f in folders if f.is_dir()))
    summaries = [Path(p).resolve() for p in eval_paths if Path(p).is_file()]
    summaries += [f / "summary.json" for f in folders if (f / "summary.json").is_file()]
    summaries = list(dict.fromkeys(summaries))
    tables = eval_tables(summaries)
    tables += answer_tables(evaluations(summaries).get("world", []))
    experiments = [
        read_experiment(f) for f in folders if (f / "results.json").is_file() or (f / "results.md").is_file()
    ]
    return tables, experiments
