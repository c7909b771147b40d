"""Tables and figures of an experiment: `results.json`, `results.md`, `efficiency.png`.

Every metric is reported as mean ± std over seeds. HRI (Eq. 7) is computed per run against the untrained model
(the paper's base) with two references: the best mean of any cell on each benchmark (the paper's choice,
Appendix A.1: "we consider the best performance on the benchmark as its reference performance") and the world's
oracle (its own reference answers, scored by the same code). General Acc_Dif is the change of the world's
in-distribution accuracy against the base (Table 8's quantity on the world's one general benchmark).
A benchmark on which no cell beats the base has no gain to normalise by; it is left out of the best-reference
HRI (and named in `results.json` as `hri_left_out`).

A last table gives the paper's analyses of each run (`runner.run_analyses`, `ovip.analysis`): the sampling
statistics of the first and last training windows (Fig. 10), the negative images' quality (Table 1) and, when
the spec asks for it, the probability-mass shift (Fig. 5); a column no run has is left out.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ovip.eval.metrics import HRI_KEYS, hri
from ovip.experiment.spec import ExperimentSpec

COLUMNS = [  # (header, split, metric path)
    ("CHAIR ↓", "amber_gen", "chair"),
    ("Cover ↑", "amber_gen", "cover"),
    ("AMB F1 ↑", "amber_gen", "f1"),
    ("MMHal ↑", "mmhal", "score"),
    ("ObjHal CHAIR_r ↓", "objecthal", "chair_r"),
    ("ObjHal F1 ↑", "objecthal", "f1"),
    ("LV ↑", "llava_bench", "score"),
    ("AMB-dis F1 ↑", "amber_dis", "f1"),
    ("partner rate ↓", "amber_gen", "partner_rate"),
    ("parse rate ↑", "amber_gen", "fluency/parse_rate"),
    ("repeated mentions ↓", "amber_gen", "fluency/mention_repetition"),
]


def value(evaluation: dict, split: str, path: str):
    block = evaluation.get(split, {})
    for part in path.split("/"):
        block = block.get(part) if isinstance(block, dict) else None
    return block


def mean_std(xs: list[float | None]) -> tuple[float | None, float | None]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(xs: list[float | None]) -> str:
    m, s = mean_std(xs)
    return "-" if m is None else f"{m:.2f}" if len(xs) == 1 else f"{m:.2f} ± {s:.2f}"


def summarize(spec: ExperimentSpec, base: dict, results: list[dict]) -> dict:
    """{cell: {metric: [per-seed values]}} plus HRI (best and oracle reference) and General Acc_Dif."""
    by_cell: dict[str, list[dict]] = {}
    for r in results:
        by_cell.setdefault(r["cell"], []).append(r)
    base_hri = base["eval"]["hri_inputs"]
    # the paper's reference: the best cell mean on each benchmark (higher is better for all five HRI inputs)
    best = {
        k: max(
            [base_hri[k]]
            + [statistics.mean([r["eval"]["hri_inputs"][k] for r in rs]) for rs in by_cell.values()]
        )
        for k in HRI_KEYS
    }
    oracle = base["oracle"]["hri_inputs"]
    left_out = [k for k in HRI_KEYS if best[k] == base_hri[k]]
    kept = [k for k in HRI_KEYS if k not in left_out]

    def hri_best(scores: dict) -> float:
        return 2.0 * sum((scores[k] - base_hri[k]) / (best[k] - base_hri[k]) for k in kept)

    cells = {"base": {h: [value(base["eval"], s, p)] for h, s, p in COLUMNS}}
    cells["base"].update({"HRI": [0.0], "HRI (oracle ref.)": [0.0], "General Acc_Dif": [0.0]})
    for cell, rs in by_cell.items():
        row = {h: [value(r["eval"], s, p) for r in rs] for h, s, p in COLUMNS}
        row["HRI"] = [hri_best(r["eval"]["hri_inputs"]) for r in rs]
        row["HRI (oracle ref.)"] = [hri(r["eval"]["hri_inputs"], base_hri, oracle) for r in rs]
        row["General Acc_Dif"] = [
            r["eval"]["general"]["accuracy"] - base["eval"]["general"]["accuracy"] for r in rs
        ]
        row["policy samples"] = [r["cost"]["samples"] for r in rs]
        row["wall seconds"] = [r["cost"]["wall_seconds"] for r in rs]
        cells[cell] = row
    return {
        "cells": cells,
        "hri_reference": best,
        "hri_left_out": left_out,
        "oracle": oracle,
        "seeds": spec.seeds,
        "analyses": analyses_table(results),
    }


ANALYSES = [  # (header, analysis, path in the run's analyses.json)
    ("distinct/prompt, first steps", "dynamics", "first/mean_distinct"),
    ("distinct/prompt, last steps", "dynamics", "last/mean_distinct"),
    ("duplicate %, first steps", "dynamics", "first/duplicate_rate"),
    ("duplicate %, last steps", "dynamics", "last/duplicate_rate"),
    ("A- true on I- %", "negatives", "rejected_true_on_negative"),
    ("A+ contradicted by I- %", "negatives", "chosen_false_on_negative"),
    ("negative error rate %", "negatives", "error_rate"),
    ("mass change, scores < 4", "mass_shift", "low_score_change"),
]


def analyses_table(results: list[dict]) -> dict[str, dict[str, list]]:
    """{cell: {header: [per-seed values]}} of the runs' analyses (`runner.run_analyses`); a header no run has
    is left out."""
    cells: dict[str, dict[str, list]] = {}
    for r in results:
        row = cells.setdefault(r["cell"], {})
        for header, name, path in ANALYSES:
            row.setdefault(header, []).append(value(r.get("analyses", {}), name, path))
    return {
        cell: {h: xs for h, xs in row.items() if any(x is not None for x in xs)}
        for cell, row in cells.items()
    }


def analyses_markdown(table: dict[str, dict[str, list]]) -> str:
    headers = [h for h, _, _ in ANALYSES if any(h in row for row in table.values())]
    if not headers:
        return ""
    out = [
        "\n## The paper's analyses\n",
        "Rollout statistics over training (Fig. 10: the first and last tenth of the optimizer steps that "
        "sampled; duplicate: "
        "fewer than 14 of 16 distinct, scaled to k), the negative images scored exactly on the world (Table 1: "
        "`ovip analyze negatives`) and, when the spec asks, the probability-mass shift (Fig. 5). Files: "
        "`<cell>/seed-<s>/analysis/`.\n",
        "| method | " + " | ".join(headers) + " |\n|" + " --- |" * (len(headers) + 1),
    ]
    for cell, row in table.items():
        out.append(f"| {cell} | " + " | ".join(fmt(row.get(h, [])) for h in headers) + " |")
    return "\n".join(out) + "\n"


def markdown(spec: ExperimentSpec, summary: dict) -> str:
    headers = [h for h, _, _ in COLUMNS] + ["General Acc_Dif", "HRI", "HRI (oracle ref.)"]
    out = [
        f"# Experiment `{spec.name}`\n",
        f"Seeds: {spec.seeds}; mean ± std over seeds. Regenerate: `ovip experiment {spec.name}`.\n",
    ]
    tables = spec.tables or {"All cells": ["base", *spec.cells]}
    for title, rows in tables.items():
        out.append(
            f"\n## {title}\n\n| method | " + " | ".join(headers) + " |\n|" + " --- |" * (len(headers) + 1)
        )
        for cell in rows:
            row = summary["cells"].get(cell)
            if row is not None:
                out.append(f"| {cell} | " + " | ".join(fmt(row.get(h, [])) for h in headers) + " |")
    return "\n".join(out) + "\n" + analyses_markdown(summary.get("analyses", {}))


def efficiency_figure(spec: ExperimentSpec, base: dict, results: list[dict], path: Path) -> Path | None:
    """Fig. 3 analogue: HRI (oracle reference) along training against policy samples and stage seconds."""
    curves = [r for r in results if r.get("curve")]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base_hri, oracle = base["eval"]["hri_inputs"], base["oracle"]["hri_inputs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for r in curves:
        xs_s = [0] + [p["samples"] for p in r["curve"]]
        xs_t = [0] + [p["stage_seconds"] for p in r["curve"]]
        ys = [0.0] + [hri(p["eval"]["hri_inputs"], base_hri, oracle) for p in r["curve"]]
        axes[0].plot(xs_s, ys, marker="o", label=r["cell"])
        axes[1].plot(xs_t, ys, marker="o", label=r["cell"])
    axes[0].set_xlabel("policy samples")
    axes[1].set_xlabel("seconds in the loop's stages (this machine)")
    for ax in axes:
        ax.set_ylabel("HRI (Eq. 7, oracle reference)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Training efficiency ({spec.name}, seed {spec.seeds[0]})")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(spec: ExperimentSpec, out: Path, base: dict, results: list[dict]) -> dict:
    summary = summarize(spec, base, results)
    figure = efficiency_figure(spec, base, results, out / "efficiency.png")
    data = {"spec": spec.name, "summary": summary, "figure": str(figure) if figure else None, "runs": results}
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    (out / "results.md").write_text(
        markdown(spec, summary) + (f"\n![efficiency]({figure.name})\n" if figure else "")
    )
    return data
