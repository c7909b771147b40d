"""What a report shows, read from run folders without trusting them.

A run folder (`ovip train`) holds metrics.jsonl (one object per optimizer step; a non-finite value is logged as
null), experiences.jsonl (one `ovip.records.Experience` per line), images/, summary.json and config.yaml. Any of
them may be missing, and a killed run may end in a torn line: bad lines are counted and skipped, missing keys
and nulls become NaN (a gap in a curve), never an error.

Folders are found under the paths given: a path that holds metrics.jsonl or experiences.jsonl is a run; else
its sub-folders (four levels down) that do are, e.g. the `<cell>/pretrain-<b>/seed-<s>/run/` runs of an
experiment folder (`ovip experiment`, `ovip quickstart`); a run folder's own sub-folders are not searched.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RUN_LOGS = ("metrics.jsonl", "experiences.jsonl")


def number(value) -> float | None:
    """A finite float, or None for anything else (null, NaN, inf, text, lists)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """(the JSON objects of `path`, how many non-empty lines were not one); ([], 0) if there is no file."""
    if not path.is_file():
        return [], 0
    records, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
    return records, bad


def read_json(path: Path):
    """The JSON content of `path`, or None if it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Run:
    """One run folder: per-step metrics as columns, the experiences, and what could not be read."""

    name: str
    path: Path
    metrics: list[dict] = field(default_factory=list)
    experiences: list[dict] = field(default_factory=list)
    bad_lines: dict[str, int] = field(default_factory=dict)
    summary: dict | None = None

    def column(self, key: str) -> np.ndarray:
        """float array over steps (NaN where the step has no finite value)."""
        return np.array(
            [np.nan if (v := number(r.get(key))) is None else v for r in self.metrics], dtype=float
        )

    def x(self, axis: str) -> np.ndarray:
        """The x values of the steps: `step` (optimizer steps) or `prompts` (prompts consumed); NaN (no point)
        where a record lacks it, and the positions 1, 2, ... when no record has it."""
        values = self.column(axis)
        return np.arange(1, len(values) + 1, dtype=float) if np.isnan(values).all() else values

    def keys(self) -> set[str]:
        """Keys with at least one finite number."""
        return {k for r in self.metrics for k, v in r.items() if number(v) is not None}

    def image(self, path: str | None) -> Path | None:
        """An experience's image on disk: the recorded path, or the file of that name in this run's images/
        (the run folder may have moved since)."""
        if not path:
            return None
        for candidate in (Path(path), self.path / "images" / Path(path).name):
            if candidate.is_file():
                return candidate
        return None


def load_run(path: Path, name: str | None = None) -> Run:
    path = Path(path)
    metrics, bad_metrics = read_jsonl(path / "metrics.jsonl")
    experiences, bad_experiences = read_jsonl(path / "experiences.jsonl")
    bad = {n: k for n, k in (("metrics.jsonl", bad_metrics), ("experiences.jsonl", bad_experiences)) if k}
    summary = read_json(path / "summary.json")
    return Run(
        name or path.name, path, metrics, experiences, bad, summary if isinstance(summary, dict) else None
    )


def is_run(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_LOGS)


def find_runs(paths: list[Path], depth: int = 4) -> list[Path]:
    """Run folders at or under `paths` (see the module docstring), each once, in the order given."""
    found: list[Path] = []

    def walk(folder: Path, left: int) -> None:
        if is_run(folder):
            found.append(folder)
        elif left > 0 and folder.is_dir():
            for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
                walk(sub, left - 1)

    for path in paths:
        walk(Path(path), depth)
    return list(dict.fromkeys(p.resolve() for p in found))


def run_names(paths: list[Path]) -> list[str]:
    """Short distinct names: the folder name, with parent folders prepended where two would collide."""
    parts = [[x for x in p.parts if x != p.anchor] for p in paths]
    for n in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ["/".join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def load_runs(paths: list[Path]) -> list[Run]:
    folders = find_runs(paths)
    return [load_run(p, n) for p, n in zip(folders, run_names(folders), strict=True)]


@dataclass
class Table:
    """A table to show: `rows` are already formatted strings, one per column."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    source: str = ""
    note: str = ""
    kind: str = ""  # a CSS class of the table's box ("answers": text cells, left-aligned)


def fmt(value) -> str:
    x = number(value)
    if x is None:
        return "-" if value is None else str(value)
    return f"{x:.0f}" if x.is_integer() and abs(x) >= 1 else f"{x:.4g}"
