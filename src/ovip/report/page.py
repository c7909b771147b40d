"""`ovip report RUN_DIR [RUN_DIR ...]`: one self-contained HTML page (figures and images embedded as data URLs).

Sections: an overview of the runs; curves of every logged metric (losses, implicit rewards and margins, judge,
pairs, rollout, optimizer) over optimizer steps or prompts, runs overlaid; the time per stage (Appendix D,
Fig. 12); the experience gallery (I+ / I-, Q, A+ / A-, T-); the evaluation results found beside the runs and any
experiment folder's results (`ovip.report.results`). The page's only script sorts the gallery and switches the
x axis; it loads nothing from the network.
"""

from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path

from ovip.report import figures
from ovip.report.assets import SCRIPT, STYLE
from ovip.report.data import Run, Table, load_runs, number
from ovip.report.gallery import Images, gallery
from ovip.report.markdown import to_html
from ovip.report.results import Experiment, find_results
from ovip.train.timers import STAGES

esc = html.escape


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def table_html(table: Table) -> str:
    title = f"<h3>{esc(table.title)}</h3>" if table.title else ""
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{esc(table.note)}</p>' if table.note else ""
    source = f'<p class="source">{esc(table.source)}</p>' if table.source else ""
    kind = f" {esc(table.kind)}" if table.kind else ""
    return f'<div class="table{kind}">{title}{source}{note}<table><tr>{head}</tr>{body}</table></div>'


def _last(run: Run, key: str) -> str:
    values = [v for r in run.metrics if (v := number(r.get(key))) is not None]
    return f"{values[-1]:.4g}" if values else "-"


def overview(runs: list[Run]) -> str:
    keys = ("loss", "rewards/margins", "rewards/accuracies", "judge/failure_rate", "pairs/per_prompt")
    rows = []
    for run in runs:
        bad = ", ".join(f"{n}: {k}" for n, k in run.bad_lines.items()) or "-"
        rows.append(
            [
                run.name,
                str(run.path),
                _last(run, "step"),
                _last(run, "prompts"),
                str(len(run.experiences)),
                *(_last(run, k) for k in keys),
                "finished" if run.summary else "no summary.json",
                bad,
            ]
        )
    cols = [
        "run",
        "folder",
        "steps",
        "prompts",
        "experiences",
        *(f"last {k}" for k in keys),
        "state",
        "unreadable lines",
    ]
    return table_html(Table("", cols, rows))


def curves_section(runs: list[Run]) -> str:
    parts = []
    for gid, title, keys in figures.curve_groups(runs):
        imgs = "".join(
            f'<img class="x-{axis}" src="{data_url(figures.curves(runs, keys, axis, title))}" '
            f'alt="{esc(title)} over {figures.X_LABELS[axis]}">'
            for axis in figures.X_LABELS
        )
        parts.append(f'<figure class="plot" id="fig-{gid}" data-figure="{gid}">{imgs}</figure>')
    if not parts:
        return '<p class="note">No metrics logged yet (metrics.jsonl has no step).</p>'
    buttons = (
        '<div class="axis">x axis: <button type="button" data-axis="step" class="on">optimizer steps'
        '</button><button type="button" data-axis="prompts">prompts</button></div>'
    )
    return buttons + "".join(parts)


def timing_section(runs: list[Run]) -> str:
    timed = [r for r in runs if any(k.startswith("time/") for k in r.keys())]
    if not timed:
        return '<p class="note">No time/* metrics logged.</p>'
    rows = []
    for stage in STAGES:
        row = [stage]
        for run in timed:
            seconds = figures.stage_seconds(run)
            total = sum(seconds.values()) or 1.0
            row.append(f"{seconds[stage]:.1f} s ({100 * seconds[stage] / total:.1f}%)")
        rows.append(row)
    share = figures.stage_share(timed)
    steps = figures.stage_steps(timed)
    return (
        f'<figure class="plot" id="fig-time-share" data-figure="time-share"><img src="{data_url(share)}" '
        f'alt="share of time per stage"></figure>'
        + table_html(Table("Seconds per stage", ["stage", *(r.name for r in timed)], rows))
        + f'<figure class="plot" id="fig-time-steps" data-figure="time-steps"><img src="{data_url(steps)}" '
        f'alt="seconds per stage at each step"></figure>'
    )


def experiment_html(exp: Experiment) -> str:
    parts = [
        f'<div class="experiment" data-path="{esc(str(exp.path))}"><h3>{esc(exp.path.name)}</h3>'
        f'<p class="source">{esc(str(exp.path))}</p>'
    ]
    if exp.markdown:
        parts.append(f'<div class="md">{to_html(exp.markdown)}</div>')
    for fig in exp.figures:
        mime = "image/svg+xml" if fig.suffix.lower() == ".svg" else "image/png"
        parts.append(
            f'<figure class="plot experiment-figure"><img src="{data_url(fig.read_bytes(), mime)}" '
            f'alt="{esc(fig.name)}"><figcaption>{esc(fig.name)}</figcaption></figure>'
        )
    if exp.results is not None:
        import json

        text = json.dumps(exp.results, indent=2, default=str)
        parts.append(f"<details><summary>results.json</summary><pre>{esc(text)}</pre></details>")
    return "".join(parts) + "</div>"


def render(
    runs: list[Run],
    tables: list[Table],
    experiments: list[Experiment],
    n_random: int = 24,
    n_worst: int = 12,
    seed: int = 0,
) -> str:
    images = Images()
    galleries = "".join(gallery(run, i, n_random, n_worst, seed, images) for i, run in enumerate(runs))
    sections = [
        ("runs", "Runs", overview(runs) if runs else '<p class="note">No run folder found.</p>'),
        ("curves", "Curves", curves_section(runs)),
        ("timing", "Time per stage", timing_section(runs)),
        ("gallery", "Experiences", galleries or '<p class="note">No experiences logged.</p>'),
        (
            "evaluation",
            "Evaluation",
            "".join(table_html(t) for t in tables)
            or '<p class="note">No evaluation results found (summary.json of ovip eval; <code>--eval DIR</code> '
            "adds more; the tables of an experiment or a quickstart are under Experiments).</p>",
        ),
    ]
    if experiments:
        sections.append(("experiments", "Experiments", "".join(experiment_html(e) for e in experiments)))
    nav = " · ".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>' for sid, title, content in sections
    )
    names = ", ".join(r.name for r in runs) or "no runs"
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>ovip report: {esc(names)}'
        f'</title><meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><style>{STYLE}</style></head>'
        f"<body><header><h1>ovip report</h1><p>{esc(names)} · written {when}</p><nav>{nav}</nav></header>"
        f"<main>{body}</main><script>{SCRIPT}</script></body></html>\n"
    )


def build_report(
    paths, output=None, eval_paths=(), n_random: int = 24, n_worst: int = 12, seed: int = 0
) -> Path:
    """Write the report of the runs at or under `paths` to `output` (default: RUN_DIR/report.html for one
    folder, ./report.html for several) and return its path."""
    paths = [Path(p) for p in paths]
    for p in [*paths, *map(Path, eval_paths)]:
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
    runs = load_runs(paths)
    tables, experiments = find_results(paths, [r.path for r in runs], [Path(p) for p in eval_paths])
    if not (runs or tables or experiments):
        raise FileNotFoundError(
            f"nothing to report under {', '.join(map(str, paths))}: no run folder "
            "(metrics.jsonl, experiences.jsonl), eval summary.json or "
            "experiment results (results.json, results.md)"
        )
    if output is None:
        output = paths[0] / "report.html" if len(paths) == 1 and paths[0].is_dir() else Path("report.html")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(runs, tables, experiments, n_random, n_worst, seed), encoding="utf-8")
    return output
