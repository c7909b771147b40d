"""The report's figures, drawn with matplotlib and returned as PNG bytes.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot): no global state, no display needed,
the Agg canvas renders them. Every curve figure is one panel per metric with one line per run (runs overlaid),
over optimizer steps or over prompts consumed. The judge/*, pairs/* and rollout/* metrics are running ratios
since the start of the run, as `ovip.train.loop.Counters` logs them.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.figure import Figure

from ovip.report.data import Run
from ovip.train.timers import STAGES

# (id, title, key patterns); a pattern ending in "/" matches a prefix, any other one the exact key.
GROUPS = [
    ("losses", "Losses (L_OViP = L_Text + L_Image, Eq. 4-6)", ("loss", "loss/")),
    ("rewards", "Implicit rewards and margins, beta * log(pi / pi_ref)", ("rewards/",)),
    ("logps", "Policy log-probs", ("logps/",)),
    ("judge", "Judge G_r: mean score and failure rate (running)", ("judge/",)),
    ("pairs", "Pairs: yield per prompt and reference fallback rate (running)", ("pairs/",)),
    ("rollout", "Rollout: distinct responses per prompt (running)", ("rollout/",)),
    (
        "optimizer",
        "Optimizer: learning rate, gradient norm (before clipping), buffer",
        ("lr", "grad_norm", "buffer/"),
    ),
    ("failures", "Failures and guards (totals)", ("negatives/", "train/", "experiences/")),
]
FIRST = (
    "loss",
    "loss/text",
    "loss/image",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "judge/mean_score",
    "judge/failure_rate",
    "pairs/per_prompt",
    "pairs/fallback_rate",
)
NOT_CURVES = ("step", "prompts", "time/wall")
X_LABELS = {"step": "optimizer step", "prompts": "prompts consumed"}
STAGE_COLORS = dict(
    zip(
        STAGES,
        ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#8c8c8c", "#da8bc3"),
        strict=True,
    )
)


def matches(key: str, patterns) -> bool:
    return any(key == p or (p.endswith("/") and key.startswith(p)) for p in patterns)


def _order(keys) -> list[str]:
    return sorted(keys, key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k))


def curve_groups(runs: list[Run]) -> list[tuple[str, str, list[str]]]:
    """(id, title, keys) of each group that some run has a value for; keys no group claims go to 'other'."""
    keys = set().union(*(r.keys() for r in runs)) if runs else set()
    keys = {k for k in keys if k not in NOT_CURVES and not k.startswith("time/")}
    out = []
    for gid, title, patterns in GROUPS:
        mine = [k for k in keys if matches(k, patterns)]
        if mine:
            out.append((gid, title, _order(mine)))
            keys -= set(mine)
    if keys:
        out.append(("other", "Other metrics", _order(keys)))
    return out


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def curves(runs: list[Run], keys: list[str], axis: str, title: str) -> bytes:
    """One panel per key, one line per run, over `axis` ('step' or 'prompts')."""
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    legend = 0.35 if len(runs) > 1 else 0.0
    width, height = 4.3 * ncols, 2.7 * nrows + 0.5 + legend
    fig = Figure(figsize=(width, height), dpi=80)
    fig.suptitle(title, fontsize=11)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    # Fixed margins in inches: a constrained layout would cost two extra draws per figure.
    fig.subplots_adjust(
        left=0.6 / width,
        right=1 - 0.15 / width,
        top=1 - 0.55 / height,
        bottom=(0.5 + legend) / height,
        hspace=0.55,
        wspace=0.3,
    )
    for ax, key in zip(axes, keys, strict=False):
        for run, color in zip(runs, _colors(len(runs)), strict=True):
            y = run.column(key)
            if np.isnan(y).all():
                continue
            ax.plot(run.x(axis), y, color=color, lw=1.3, label=run.name, marker="." if len(y) <= 60 else None)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel(X_LABELS[axis], fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    if len(runs) > 1:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], color=c, lw=1.3, label=r.name)
            for r, c in zip(runs, _colors(len(runs)), strict=True)
        ]
        fig.legend(handles=handles, loc="lower center", ncols=min(4, len(runs)), fontsize=8, frameon=False)
    return png(fig)


def stage_seconds(run: Run) -> dict[str, float]:
    """Seconds per stage summed over the run's steps (the `time/<stage>` metrics, Appendix D)."""
    return {s: float(np.nansum(run.column(f"time/{s}"))) for s in STAGES}


def stage_share(runs: list[Run]) -> bytes:
    """Share of the time per stage, one stacked bar per run (the pie of Fig. 12 as bars, to compare runs)."""
    fig = Figure(figsize=(11, 1.2 + 0.55 * len(runs)), dpi=80, layout="constrained")
    ax = fig.subplots()
    for i, run in enumerate(runs):
        seconds = stage_seconds(run)
        total = sum(seconds.values()) or 1.0
        left = 0.0
        for stage in STAGES:
            share = 100 * seconds[stage] / total
            ax.barh(i, share, left=left, color=STAGE_COLORS[stage], label=stage if i == 0 else None)
            if share >= 5:
                ax.text(
                    left + share / 2, i, f"{share:.0f}%", ha="center", va="center", fontsize=8, color="white"
                )
            left += share
    ax.set_yticks(range(len(runs)), [r.name for r in runs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the training time (%)", fontsize=8)
    ax.set_title("Time per stage (Appendix D, Fig. 12)", fontsize=11)
    fig.legend(loc="outside right center", fontsize=8)
    return png(fig)


def stage_steps(runs: list[Run], axis: str = "step") -> bytes:
    """Seconds per stage at each optimizer step, stacked; one panel per run."""
    fig = Figure(figsize=(11, 0.5 + 2.6 * len(runs)), dpi=80, layout="constrained")
    axes = fig.subplots(len(runs), 1, squeeze=False).ravel()
    for ax, run in zip(axes, runs, strict=True):
        x = run.x(axis)
        ys = [np.nan_to_num(run.column(f"time/{s}")) for s in STAGES]
        ax.stackplot(x, *ys, labels=STAGES, colors=[STAGE_COLORS[s] for s in STAGES], step="mid")
        ax.set_title(f"{run.name}: seconds per stage at each step", fontsize=10)
        ax.set_xlabel(X_LABELS[axis], fontsize=8)
        ax.set_ylabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return png(fig)
