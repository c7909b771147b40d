"""Quality of the negative images a run drew (§2.4, Table 1), computed exactly on the built-in world.

A world negative image I- is `render(text_to_scene(T-, seed))` (`world.judge.WorldRenderer`), with T- the
experience's `description` and the seed its `negative_seed`, so its scene is known exactly; the positive image's
scene is the preference split's record of the example. For every experience with a negative image, each answer
is checked against each scene (`world.truth.holds`: a question's core answer is the true one; a description
states no object, colour or count that is not there; omissions are not falsehoods) and scored by the world
judge against the true answer of the query about each scene (`world.truth.answer`):

    rejected_true_on_negative   % of negatives of which A- holds (what the description was asked for)
    chosen_false_on_negative    % of negatives of which A+ does not hold: I- contradicts A+
    error_rate                  100 - chosen_false_on_negative: the paper's "error rate", negatives that do not
                                contradict the positive response
    mean scores                 the judge's score (0-10) of A+ and A- on I+ and on I- (fluency included)

`image_matches` counts the negatives whose saved PNG equals the scene re-rendered, a check that the scene is the
one drawn.

Left out: the paper's quality score (the Table 12 prompt, `analysis.stats.parse_quality_reply`) and the CLIP
cosine to I+, which need a model; runs whose negatives are not drawn by the world renderer (crops, random
images, a diffusion model) are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ovip.analysis.output import markdown_table, pyplot, write_outputs


@dataclass(frozen=True)
class NegativeCheck:
    """One experience: the task, the scores (0-10) of A+ and A- on I+ and I-, and whether each holds on I-."""

    example_id: str
    task: str
    chosen_positive: float
    rejected_positive: float
    chosen_negative: float
    rejected_negative: float
    chosen_holds_negative: bool
    rejected_holds_negative: bool


def check_experience(exp: dict, positive_scene, world_cfg, judge) -> NegativeCheck | None:
    """Score one experience's answers on its two scenes; None when a query has no single true answer."""
    from ovip.world.judge import query_task
    from ovip.world.parse import text_to_scene
    from ovip.world.truth import answer, holds

    negative_scene, _ = text_to_scene(exp["description"] or "", world_cfg, exp["negative_seed"])
    query = exp["query"]
    truth_pos = answer(query, positive_scene, world_cfg.categories, world_cfg.colors)
    truth_neg = answer(query, negative_scene, world_cfg.categories, world_cfg.colors)
    if truth_pos is None or truth_neg is None:
        return None
    chosen, rejected = exp["chosen"], exp["rejected"]
    return NegativeCheck(
        exp["example_id"],
        query_task(query),
        judge.score(query, chosen, truth_pos),
        judge.score(query, rejected, truth_pos),
        judge.score(query, chosen, truth_neg),
        judge.score(query, rejected, truth_neg),
        bool(holds(query, chosen, negative_scene, world_cfg.categories, world_cfg.colors)),
        bool(holds(query, rejected, negative_scene, world_cfg.categories, world_cfg.colors)),
    )


def summarize(checks: list[NegativeCheck]) -> dict:
    n = len(checks)

    def pct(xs) -> float | None:
        return 100.0 * sum(xs) / n if n else None

    def mean(key: str) -> float | None:
        return sum(getattr(c, key) for c in checks) / n if n else None

    contradicts = pct(not c.chosen_holds_negative for c in checks)
    return {
        "n": n,
        "rejected_true_on_negative": pct(c.rejected_holds_negative for c in checks),
        "chosen_false_on_negative": contradicts,
        "error_rate": None if contradicts is None else 100.0 - contradicts,
        "chosen_on_positive": mean("chosen_positive"),
        "rejected_on_positive": mean("rejected_positive"),
        "chosen_on_negative": mean("chosen_negative"),
        "rejected_on_negative": mean("rejected_negative"),
    }


def world_scenes(cfg, example_ids: set[str], image_paths: list[str]) -> dict:
    """The preference split's scene of each example id: from the split's data.jsonl next to the images when it
    is there, else the split regenerated from the world config (a pure function of it)."""
    from ovip.world.scene import Scene
    from ovip.world.splits import make_split

    scenes = {}
    for folder in {Path(p).parent.parent for p in image_paths if p}:
        data = folder / "data.jsonl"
        if data.exists():
            for line in data.read_text().splitlines():
                r = json.loads(line)
                if r["id"] in example_ids:
                    scenes[r["id"]] = Scene.from_dict(r["scene"])
    if example_ids - set(scenes):
        scenes.update({e.id: e.scene for e in make_split(cfg.world, "preference") if e.id in example_ids})
    return scenes


def analyze_negatives(run_dir: Path, output: Path | None = None) -> dict:
    """Write negatives.{json,md,png} under `output` (default RUN_DIR/analysis); returns the JSON's content."""
    import numpy as np
    from PIL import Image

    from ovip.config import load
    from ovip.world.judge import WorldJudge
    from ovip.world.parse import text_to_scene
    from ovip.world.render import render

    run_dir = Path(run_dir)
    cfg = load(run_dir / "config.yaml")
    if cfg.train.data != "world" or cfg.negatives.kind != "world":
        raise ValueError(
            f"{run_dir}: only runs on the built-in world whose negatives the world renderer drew are supported "
            f"yet (train.data {cfg.train.data!r}, negatives.kind {cfg.negatives.kind!r})"
        )
    path = run_dir / "experiences.jsonl"
    rows = (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
    rows = [r for r in rows if r.get("negative_image_path") and r.get("description") is not None]
    wc = cfg.world
    scenes = world_scenes(cfg, {r["example_id"] for r in rows}, [r["image_path"] for r in rows])
    judge = WorldJudge(wc.categories, wc.colors)
    checks, undetermined, matches, compared = [], 0, 0, 0
    for r in rows:
        check = check_experience(r, scenes[r["example_id"]], wc, judge)
        if check is None:
            undetermined += 1
            continue
        checks.append(check)
        saved = Path(r["negative_image_path"])
        if saved.exists():
            compared += 1
            scene, _ = text_to_scene(r["description"], wc, r["negative_seed"])
            drawn = np.asarray(render(scene, r["negative_seed"], wc.image_size))
            matches += bool(np.array_equal(drawn, np.asarray(Image.open(saved).convert("RGB"))))
    tasks = sorted({c.task for c in checks})
    per_task = {t: summarize([c for c in checks if c.task == t]) for t in tasks}
    data = {
        "analysis": "negatives",
        "run": str(run_dir),
        "undetermined": undetermined,
        "image_matches": matches,
        "images_compared": compared,
        "all": summarize(checks),
        "per_task": per_task,
        "items": [asdict(c) for c in checks],
    }
    columns = ["task", "n", "rejected_true_on_negative", "chosen_false_on_negative", "error_rate"]
    columns += ["chosen_on_positive", "rejected_on_positive", "chosen_on_negative", "rejected_on_negative"]
    table = [{"task": "all", **data["all"]}] + [{"task": t, **s} for t, s in per_task.items()]
    md = (
        f"# Negative images (Table 1), exact on the world\n\nRun `{run_dir}`: {len(checks)} experiences with a "
        f"negative image ({undetermined} left out: no single true answer); re-rendered scenes equal to the saved "
        f"image: {matches} of {compared}. Percentages of negatives (an answer is true of an image when it states "
        "nothing false about it); scores: the world judge's 0-10 against the true answer.\n\n"
        + markdown_table(columns, table)
    )
    paths = write_outputs(Path(output or run_dir / "analysis"), "negatives", data, md, _figure(data["all"]))
    return {**data, "files": {key: str(p) for key, p in paths.items()}}


def _figure(summary: dict):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    labels = ["I+ (positive)", "I- (negative)"]
    chosen = [summary["chosen_on_positive"] or 0.0, summary["chosen_on_negative"] or 0.0]
    rejected = [summary["rejected_on_positive"] or 0.0, summary["rejected_on_negative"] or 0.0]
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], chosen, width=0.4, label="A+ (chosen)")
    ax.bar([x + 0.2 for x in xs], rejected, width=0.4, label="A- (rejected)")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("mean world judge score (0-10)")
    ax.set_ylim(0, 10)
    ax.set_title(f"Answers scored on each image (n = {summary['n']})")
    ax.legend()
    return fig
