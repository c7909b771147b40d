"""Tables and figures of an experiment: `results.json`, `results.md`, `efficiency.png` (the only table writer:
`ovip experiment` and `ovip quickstart` print these).

Every run is a (cell, base model, training seed); every metric is reported as mean ± std over the runs, i.e.
over base models x training seeds, and with more than one base model the spread over base models too (min -
max of the per-base-model means: how far another base model, e.g. one pretrained on another CPU, may land).
HRI (Eq. 7) is computed per run against its own untrained base model with two references: the best mean of
any cell on each benchmark (the paper's choice, Appendix A.1: "we consider the best performance on the
benchmark as its reference performance") and the world's oracle (its own reference answers, scored by the
same code). General Acc_Dif is the change of the world's in-distribution accuracy against the base (Table
8's quantity on the world's one general benchmark). A benchmark on which no cell beats every base model has
no gain to normalise by; it is left out of the best-reference HRI (named in `results.json` as `hri_left_out`).

The cost columns put optimizer steps beside policy samples: methods differ in both (GRPO updates per batch of
scored samples, OViP per batch of pairs). `before_after` (the quickstart's table) lists every metric of one
cell beside the base and the oracle. The verdict table is computed from the item records
(`ovip.experiment.paired`): no verdict is written by hand. The machine of the runs (CPU, torch build,
threads) stands beside every table.

A last table gives the paper's analyses of each run (`runner.run_analyses`, `ovip.analysis`): the sampling
statistics of the first and last training windows (Fig. 10), the negative images' quality (Table 1) and, when
the spec asks for it, the probability-mass shift (Fig. 5); a column no run has is left out.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ovip.eval.metrics import HRI_KEYS, hri
from ovip.experiment.paired import verdicts
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
COST = [("policy samples", "samples"), ("optimizer steps", "steps"), ("wall seconds", "wall_seconds")]
ROWS = [  # the before/after table: (label, split, metric path, higher is better); split "all" averages splits
    ("AMBER-gen CHAIR", "amber_gen", "chair", False),
    ("AMBER-gen CHAIR (once per object)", "amber_gen", "chair_unique", False),
    ("AMBER-gen Cover", "amber_gen", "cover", True),
    ("AMBER-gen Hal", "amber_gen", "hal", False),
    ("AMBER-gen F1", "amber_gen", "f1", True),
    ("AMBER-gen prior share", "amber_gen", "prior_share", False),
    ("partner hallucination rate, trained priors", "amber_gen", "partner_rate", False),
    ("partner hallucination rate, held-out prior", "amber_gen", "partner_rate_heldout", False),
    ("AMBER-dis F1 (constant 'no': see json)", "amber_dis", "f1", True),
    ("AMBER-dis accuracy on 'yes' questions", "amber_dis", "yes_accuracy", True),
    ("AMBER-dis accuracy on 'no' questions", "amber_dis", "no_accuracy", True),
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
PAIRED_HEADERS = {
    "chair": "CHAIR ↓",
    "cover": "Cover ↑",
    "objecthal_chair_r": "ObjHal CHAIR_r ↓",
    "partner_rate": "partner rate ↓",
    "hri": "HRI (oracle ref.) ↑",
}


def value(evaluation: dict, split: str, path: str):
    """A metric of one evaluation; `path` 'fluency/x' reads the fluency block, split 'all' averages splits."""
    if split == "all":
        found = [value(evaluation, s, path) for s in evaluation if isinstance(evaluation[s], dict)]
        found = [v for v in found if isinstance(v, (int, float))]
        return sum(found) / len(found) if found else None
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


def spread(xs: list[float | None], bases: list[int]) -> str:
    """min - max over base models of the per-base-model means of `xs` (one value per run, `bases` its base
    model); '-' with one base model."""
    per_base: dict[int, list[float]] = {}
    for x, b in zip(xs, bases, strict=True):
        if x is not None:
            per_base.setdefault(b, []).append(x)
    if len(per_base) < 2:
        return "-"
    means = [statistics.mean(v) for v in per_base.values()]
    return f"{min(means):.2f} – {max(means):.2f}"


def summarize(spec: ExperimentSpec, bases: dict[int, dict], oracle: dict, results: list[dict]) -> dict:
    """{cell: {header: [per-run values]}} plus HRI (best and oracle reference), General Acc_Dif and the cost
    columns; `run_bases` gives each value's base model."""
    by_cell: dict[str, list[dict]] = {}
    for r in results:
        by_cell.setdefault(r["cell"], []).append(r)
    base_hri = {b: r["eval"]["hri_inputs"] for b, r in bases.items()}
    # the paper's reference: the best mean on each benchmark (higher is better for all five HRI inputs)
    best = {
        k: max(
            [statistics.mean(h[k] for h in base_hri.values())]
            + [statistics.mean([r["eval"]["hri_inputs"][k] for r in rs]) for rs in by_cell.values()]
        )
        for k in HRI_KEYS
    }
    left_out = [k for k in HRI_KEYS if any(best[k] <= h[k] for h in base_hri.values())]
    kept = [k for k in HRI_KEYS if k not in left_out]
    oracle_hri = oracle["eval"]["hri_inputs"]

    def hri_best(scores: dict, base: dict) -> float:
        return 2.0 * sum((scores[k] - base[k]) / (best[k] - base[k]) for k in kept)

    cells = {"base": {h: [value(bases[b]["eval"], s, p) for b in bases] for h, s, p in COLUMNS}}
    cells["base"].update({h: [0.0] * len(bases) for h in ("HRI", "HRI (oracle ref.)", "General Acc_Dif")})
    run_bases = {"base": list(bases)}
    for cell, rs in by_cell.items():
        row = {h: [value(r["eval"], s, p) for r in rs] for h, s, p in COLUMNS}
        own = [bases[r["base_model"]]["eval"] for r in rs]  # each run against its own base model
        row["HRI"] = [
            hri_best(r["eval"]["hri_inputs"], b["hri_inputs"]) for r, b in zip(rs, own, strict=True)
        ]
        row["HRI (oracle ref.)"] = [
            hri(r["eval"]["hri_inputs"], b["hri_inputs"], oracle_hri) for r, b in zip(rs, own, strict=True)
        ]
        row["General Acc_Dif"] = [
            r["eval"]["general"]["accuracy"] - b["general"]["accuracy"] for r, b in zip(rs, own, strict=True)
        ]
        for header, key in COST:
            row[header] = [r["cost"].get(key) for r in rs]
        cells[cell] = row
        run_bases[cell] = [r["base_model"] for r in rs]
    return {
        "cells": cells,
        "run_bases": run_bases,
        "hri_reference": best,
        "hri_left_out": left_out,
        "oracle": oracle_hri,
        "base_models": spec.base_models,
        "seeds": spec.seeds,
        "machines": machines(bases, results),
        "analyses": analyses_table(results),
    }


def machines(bases: dict[int, dict], results: list[dict]) -> list[str]:
    """One line per distinct machine of the runs and per distinct way the base models were pretrained."""
    lines = []
    for r in [*results, *bases.values()]:
        m = r.get("machine") or {}
        if m:
            cuda = f", CUDA {m['cuda']}" if m.get("cuda") else ""
            lines.append(
                f"runs on {m.get('cpu')} ({m.get('cores')} cores), torch {m.get('torch')}{cuda}, "
                f"{m.get('threads')} torch threads"
            )
    for r in bases.values():
        p = r.get("pretraining") or {}
        if p:
            lines.append(
                f"base models pretrained on {p.get('threads')} thread(s), torch {p.get('torch')}, "
                f"device {p.get('device')}"
            )
    return list(dict.fromkeys(lines))


def machine_line(summary: dict) -> str:
    found = summary.get("machines") or ["not recorded"]
    return "Machine: " + "; ".join(found) + ".\n"


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
    """{cell: {header: [per-run values]}} of the runs' analyses (`runner.run_analyses`); a header no run has
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
        "`<cell>/pretrain-<b>/seed-<s>/analysis/`.\n",
        _head(["method", *headers]),
    ]
    for cell, row in table.items():
        out.append(_row([cell, *(fmt(row.get(h, [])) for h in headers)]))
    return "\n".join(out) + "\n"


def _head(columns: list[str]) -> str:
    return _row(columns) + "\n|" + " --- |" * len(columns)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def before_after(spec: ExperimentSpec, summary: dict, bases: dict, oracle: dict, results: list[dict]):
    """(columns, rows) of the before/after table of `spec.before_after`: every metric of `ROWS` for the base
    and the cell (mean ± std over runs), the change of the means, the oracle, and with several base models
    the spread of the base and of the cell over base models."""
    cell = spec.before_after
    runs = [r for r in results if r["cell"] == cell]
    if not runs:
        return [], []
    several = len(bases) > 1
    columns = ["metric", "base", cell, "change", "oracle"]
    columns += ["base: spread over base models", f"{cell}: spread over base models"] * several
    base_ids, run_ids = list(bases), [r["base_model"] for r in runs]
    rows = []
    for label, split, path, higher in ROWS:
        label += {True: " ↑", False: " ↓", None: ""}[higher]  # the better direction, as papers mark it
        before = [value(bases[b]["eval"], split, path) for b in base_ids]
        if all(x is None for x in before) and split != "all":
            continue
        after = [value(r["eval"], split, path) for r in runs]
        b, a = mean_std(before)[0], mean_std(after)[0]
        change = "" if a is None or b is None else f"{a - b:+.2f}"
        row = [label, fmt(before), fmt(after), change, fmt([value(oracle["eval"], split, path)])]
        rows.append(row + [spread(before, base_ids), spread(after, run_ids)] * several)
    hris = summary["cells"][cell]["HRI (oracle ref.)"]
    rows.append(
        ["HRI (Eq. 7, oracle reference)", "0.00", fmt(hris), "", "10.00"]
        + ["-", spread(hris, run_ids)] * several
    )
    for header, _ in COST[:2]:
        rows.append([header, "-", fmt(summary["cells"][cell][header]), "", "-"] + ["-", "-"] * several)
    return columns, rows


def grid(spec: ExperimentSpec) -> str:
    b, s = len(spec.base_models), len(spec.seeds)
    return (
        f"{b} base model{'s' * (b > 1)} (world.pretrain.seed {spec.base_models}) x {s} training "
        f"seed{'s' * (s > 1)} (train.seed {spec.seeds})"
    )


def _cost(summary: dict, cell: str, header: str) -> str:
    m = mean_std(summary["cells"].get(cell, {}).get(header, []))[0]
    return "-" if m is None else f"{m:.0f}"


def paired_markdown(paired: dict, summary: dict) -> str:
    out = ["\n## Paired comparisons: the verdicts\n"]
    if paired.get("note"):
        return "\n".join(out) + f"No verdict: {paired['note']}.\n"
    items = ", ".join(f"{n} {split}" for split, n in paired["items"].items())
    out.append(
        "Each claim A vs B is the paired difference A − B over the same evaluation items "
        f"({items}), base models and training seeds, with a 95% percentile bootstrap interval from "
        f"{paired['resamples']} resamples of items, base models and seeds together (`ovip.eval.paired`; ratio "
        "metrics as ratios of resampled sums, HRI recomputed per resample against each run's own base model "
        "and the oracle). Verdict: **supported** when the interval excludes 0 on the side the claim calls "
        "better, **contradicted** when it excludes 0 on the other side, otherwise **not resolved at this "
        "budget**. A and B are the item-level values (unrounded means over the runs); the optimizer steps "
        "and policy samples of A and B (means over the runs) say whether a comparison is per update or per "
        "sample.\n"
    )
    columns = ["claim", "A vs B", "metric", "A", "B", "A − B [95% interval]", "verdict"]
    out.append(_head([*columns, "optimizer steps A / B", "policy samples A / B"]))
    for r in paired["rows"]:
        bounds = "[-]" if r["interval"] is None else "[{:+.2f}, {:+.2f}]".format(*r["interval"])
        out.append(
            _row(
                [
                    r["claim"],
                    f"{r['better']} vs {r['than']}",
                    PAIRED_HEADERS[r["metric"]],
                    f"{r['a']:.2f}",
                    f"{r['b']:.2f}",
                    f"{r['difference']:+.2f} {bounds}",
                    r["verdict"],
                    *(
                        f"{_cost(summary, r['better'], h)} / {_cost(summary, r['than'], h)}"
                        for h in ("optimizer steps", "policy samples")
                    ),
                ]
            )
        )
    return "\n".join(out) + "\n"


def markdown(spec: ExperimentSpec, summary: dict, command: str, tables: dict | None = None) -> str:
    headers = [h for h, _, _ in COLUMNS] + ["General Acc_Dif", "HRI", "HRI (oracle ref.)"]
    headers += [h for h, _ in COST]
    out = [
        f"# Experiment `{spec.name}`\n",
        f"Runs: {grid(spec)}; mean ± std over the runs. Regenerate: `{command}`.\n",
    ]
    if tables and tables.get("before_after"):
        columns, rows = tables["before_after"]
        out.append(f"\n## {spec.before_after} before and after (evaluation scenes never seen in training)\n")
        out.append(machine_line(summary))
        out.append("\n".join([_head(columns), *(_row(r) for r in rows)]))
    several = len(spec.base_models) > 1
    for title, rows in (spec.tables or {"All cells": ["base", *spec.cells]}).items():
        out.append(f"\n## {title}\n\n{machine_line(summary)}\n{_head(['method', *headers])}")
        for cell in rows:
            row = summary["cells"].get(cell)
            if row is not None:
                out.append(_row([cell, *(fmt(row.get(h, [])) for h in headers)]))
    if several:
        spread_headers = [h for h, _, _ in COLUMNS] + ["HRI (oracle ref.)"]
        out.append(
            "\n## Spread over base models\n\nmin – max over the base models of the per-base-model means "
            f"(the untrained base: min – max of the base models).\n\n{machine_line(summary)}\n"
            + _head(["method", *spread_headers])
        )
        for cell, row in summary["cells"].items():
            ids = summary["run_bases"][cell]
            out.append(_row([cell, *(spread(row.get(h, []), ids) for h in spread_headers)]))
    if tables and "paired" in tables:
        out.append(paired_markdown(tables["paired"], summary) + "\n" + machine_line(summary))
    return "\n".join(out) + "\n" + analyses_markdown(summary.get("analyses", {}))


def efficiency_figure(spec: ExperimentSpec, bases: dict, oracle: dict, results: list[dict], path: Path):
    """Fig. 3 analogue: HRI (oracle reference) along training against policy samples, optimizer steps and stage
    seconds (the first run of each curve cell)."""
    curves = [r for r in results if r.get("curve")]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    oracle_hri = oracle["eval"]["hri_inputs"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for r in curves:
        base_hri = bases[r["base_model"]]["eval"]["hri_inputs"]
        ys = [0.0] + [hri(p["eval"]["hri_inputs"], base_hri, oracle_hri) for p in r["curve"]]
        for ax, key in zip(axes, ("samples", "steps", "stage_seconds"), strict=True):
            ax.plot([0] + [p.get(key, p.get("step")) for p in r["curve"]], ys, marker="o", label=r["cell"])
    for ax, label in zip(
        axes,
        ("policy samples", "optimizer steps", "seconds in the loop's stages (this machine)"),
        strict=True,
    ):
        ax.set_xlabel(label)
        ax.set_ylabel("HRI (Eq. 7, oracle reference)")
        ax.grid(alpha=0.3)
        ax.legend()
    first = curves[0]
    fig.suptitle(
        f"Training efficiency ({spec.name}, base model {first['base_model']}, train.seed {first['seed']})"
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    spec: ExperimentSpec,
    out: Path,
    bases: dict[int, dict],
    oracle: dict,
    results: list[dict],
    command: str | None = None,
) -> dict:
    command = command or f"ovip experiment {spec.name}"
    summary = summarize(spec, bases, oracle, results)
    tables = {"paired": verdicts(spec, out, bases, oracle, results)}
    if spec.before_after:
        tables["before_after"] = before_after(spec, summary, bases, oracle, results)
    figure = efficiency_figure(spec, bases, oracle, results, out / "efficiency.png")
    data = {
        "spec": spec.name,
        "command": command,
        "summary": summary,
        "paired": tables["paired"],
        "before_after": tables.get("before_after"),
        "figure": str(figure) if figure else None,
        "bases": bases,
        "oracle": oracle,
        "runs": results,
    }
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    (out / "results.md").write_text(
        markdown(spec, summary, command, tables) + (f"\n![efficiency]({figure.name})\n" if figure else "")
    )
    return data
