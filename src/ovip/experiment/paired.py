"""The verdicts of an experiment: each claim of its spec tested on paired differences over the item records.

Every run, base model and the oracle wrote one JSONL of item records per benchmark (`runner`, `items/`). For
each claim "A is better than B" and each of its metrics, the item records become count tables
(`ovip.world.counts`) of every run of A and of B (the untrained base model when B is `base`), and
`ovip.eval.paired` resamples items, base models and training seeds together: the difference A - B with its
95% interval and the verdict it supports. HRI is Eq. 7 against the oracle, recomputed in every resample from
the resampled AMBER F1, MMHal, ObjHal F1, LLaVA-Bench and AMBER-dis F1 of the run, of its base model and of
the oracle (each run is measured against its own base model).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ovip.eval import paired
from ovip.experiment.spec import ExperimentSpec
from ovip.world import counts

HIGHER_IS_BETTER = {name: m.higher_is_better for name, m in counts.METRICS.items()} | {"hri": True}


class MissingItems(ValueError):
    """The item records a comparison needs are absent or do not hold the same items."""


def _records(out: Path, result: dict, split: str) -> list[dict]:
    name = (result.get("items") or {}).get(split)
    path = out / result.get("folder", "") / str(name)
    if not name or not path.is_file():
        raise MissingItems(f"{out / result.get('folder', '?')}: no item records of {split}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Tables:
    """Count tables [G, S, n, k] per (cell, split), read from the item records once; `base` has S = 1 and
    the oracle G = S = 1. Every run must hold the same items in the same order."""

    def __init__(self, spec: ExperimentSpec, out: Path, bases: dict, oracle: dict, results: list[dict]):
        self.spec, self.out, self.cache, self.ids = spec, out, {}, {}
        self.runs = {"oracle": [[oracle]], "base": [[bases[b]] for b in spec.base_models]}
        by_run = {(r["cell"], r["base_model"], r["seed"]): r for r in results}
        for cell in spec.cells:
            self.runs[cell] = [[by_run[(cell, b, s)] for s in spec.seeds] for b in spec.base_models]

    def get(self, cell: str, split: str) -> np.ndarray:
        if (cell, split) not in self.cache:
            grid = []
            for row in self.runs[cell]:
                tables = []
                for result in row:
                    records = _records(self.out, result, split)
                    ids = [r.get("id") for r in records]
                    if self.ids.setdefault(split, ids) != ids:
                        raise MissingItems(
                            f"{result.get('folder')}: its {split} items differ from the others'"
                        )
                    tables.append(counts.table(split, records))
                grid.append(tables)
            self.cache[(cell, split)] = np.asarray(grid, dtype=np.float64)
        return self.cache[(cell, split)]


def _column_sums(s: np.ndarray) -> np.ndarray:
    """The 'metric' whose values are the resampled column sums themselves."""
    return s


def _values(tables: Tables, draws: paired.Draws, cell: str, metric: str, memo: dict):
    """(resampled [R, G, S], points [G, S]) of one cell's runs on one metric; `memo` keeps them, and each
    split's resampled column sums, across claims."""
    if ("metric", cell, metric) in memo:
        return memo[("metric", cell, metric)]
    if metric == "hri":
        parts = {key: _values(tables, draws, cell, key, memo) for key in counts.HRI_INPUTS}
        base = {key: _values(tables, draws, "base", key, memo) for key in counts.HRI_INPUTS}
        oracle = {key: _values(tables, draws, "oracle", key, memo) for key in counts.HRI_INPUTS}
        value = tuple(
            paired.hri({k: v[i] for k, v in parts.items()}, {k: v[i] for k, v in base.items()},
                       {k: v[i] for k, v in oracle.items()})
            for i in (0, 1)
        )  # fmt: skip
    else:
        m = counts.METRICS[metric]
        key = ("sums", cell, m.split)  # the resampled column sums, shared by the split's metrics
        if key not in memo:
            table = tables.get(cell, m.split)
            memo[key] = (paired.run_values(table, _column_sums, draws.items[m.split]), table.sum(-2))
        sums, totals = memo[key]
        value = (m.value(sums), m.value(totals))
    memo[("metric", cell, metric)] = value
    return value


def _splits(spec: ExperimentSpec) -> set[str]:
    names = {m for c in spec.claims for m in c.metrics}
    if "hri" in names:
        names |= set(counts.HRI_INPUTS)
    return {counts.METRICS[m].split for m in names if m != "hri"}


def verdicts(spec: ExperimentSpec, out: Path, bases: dict, oracle: dict, results: list[dict]) -> dict:
    """{"rows": one per (claim, metric), "items": {split: n}, "resamples", "note"}; `note` says why there are
    no rows (no claims, item records missing or unreadable: a partial table is never written)."""
    if not spec.claims:
        return {"rows": [], "note": "the spec states no claims"}
    tables = Tables(spec, out, bases, oracle, results)
    try:
        sizes = {split: tables.get("oracle", split).shape[-2] for split in sorted(_splits(spec))}
        G, S = len(spec.base_models), len(spec.seeds)
        draws = paired.draw(sizes, G, S, spec.resamples, seed=0)
        memo: dict = {}
        rows = []
        for claim in spec.claims:
            for metric in claim.metrics:
                (a, a_point), (b, b_point) = (
                    _values(tables, draws, cell, metric, memo) for cell in (claim.better, claim.than)
                )
                a_mean = float(np.broadcast_to(a_point, (G, S)).mean())
                b_mean = float(np.broadcast_to(b_point, (G, S)).mean())
                bounds = paired.interval(paired.cell_means(a, draws.runs) - paired.cell_means(b, draws.runs))
                rows.append(
                    {
                        "claim": claim.claim,
                        "better": claim.better,
                        "than": claim.than,
                        "metric": metric,
                        "higher_is_better": HIGHER_IS_BETTER[metric],
                        "a": a_mean,
                        "b": b_mean,
                        "difference": a_mean - b_mean,
                        "interval": list(bounds) if bounds else None,
                        "verdict": paired.verdict(bounds, HIGHER_IS_BETTER[metric]),
                    }
                )
    except ValueError as e:  # MissingItems, or a record without a field its metrics count
        return {"rows": [], "note": f"no paired comparison: {e}"}
    return {"rows": rows, "items": sizes, "resamples": spec.resamples, "note": None}
