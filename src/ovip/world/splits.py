"""The world's splits: pretraining (biased), preference training, and the evaluation suites.

Every split is a pure function of (WorldConfig, split name): scene `i` uses `config.scene_seed(cfg, split, i)`
for its scene, its question and its pixels, and training and evaluation seeds never overlap (config.py).

On disk (`write_split`), one folder per split:
    data.jsonl   {"id", "image": "images/<scene id>.png", "query", "reference", "task", "scene"} per line
    images/      the PNGs (pretraining scenes carry several questions that share one image)
    split.json   split name, size, world fingerprint and the priors (the benchmarks read these)

| split       | scenes        | tasks                                                          |
| ----------- | ------------- | -------------------------------------------------------------- |
| pretrain    | biased        | describe + `pretrain_qa_per_scene` questions per scene          |
| preference  | mixed         | describe (`preference_describe_p`) or one question; references  |
|             |               | in the reference voice; `preference_heldout` categories absent  |
| amber_gen   | mixed         | describe ("describe this image.")                               |
| amber_dis   | counter-prior | exist / attribute yes-no (half yes, half no), prior-baiting     |
| objecthal   | mixed         | describe (varied prompts)                                       |
| mmhal       | counter-prior | exist / attribute / color / count / relation                     |
| llava_bench | counter-prior | describe or any question                                        |
| general     | biased        | exist / attribute / color / count / relation (in-distribution)  |

"mixed" description benchmarks draw a counter-prior scene with probability `eval_counter_p` and a biased one
otherwise: on the first kind the priors bait hallucinations (CHAIR), on the second a model must still name
the small partners that are there (Cover), so that never naming a partner is not a way to score well.
Evaluation references are in the policy's voice and complete (they are the oracle of HRI); preference
references are in the reference voice (`text.reference_voice`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ovip.config.world import EVAL_SPLITS, WorldConfig, scene_seed
from ovip.records import Example
from ovip.world.render import render
from ovip.world.scene import Scene, sample_scene
from ovip.world.text import DESCRIBE_QUERIES, TASKS, question, reference_voice

QA_TASKS = TASKS[1:]
# Pretraining leans towards the yes/no questions, whose verdict (a comparison) is the slowest thing to learn.
PRETRAIN_QA = dict(zip(QA_TASKS, (0.3, 0.3, 0.1, 0.1, 0.2), strict=True))
SPLIT_PLANS = {  # split -> (scene distribution, tasks, probability of each task)
    "amber_gen": ("mixed", ("describe",), None),
    "amber_dis": ("counter", ("exist", "attribute"), (0.6, 0.4)),
    "objecthal": ("mixed", ("describe",), None),
    "mmhal": ("counter", QA_TASKS, None),
    "llava_bench": ("counter", TASKS, (0.4, 0.12, 0.12, 0.12, 0.12, 0.12)),
    "general": ("biased", QA_TASKS, None),
}


@dataclass
class WorldExample:
    """One record of a split; `image_seed` renders `scene` into the example's image."""

    id: str
    image_id: str
    query: str
    reference: str
    task: str
    scene: Scene
    image_seed: int

    def render(self, size: int) -> Image.Image:
        return render(self.scene, self.image_seed, size)


def baits(scene: Scene, cfg: WorldConfig) -> dict[str, str]:
    """What the priors predict for this scene: anchor -> partner, and 'cat:color' -> prior colour."""
    present = scene.categories()
    out = {a: b for a, b, _ in cfg.co_occurrence if a in present}
    out.update({f"{a}:color": c for a, c, _ in cfg.color_priors if a in present})
    return out


def _qa(cfg: WorldConfig, scene: Scene, rng: np.random.Generator, tasks, probs, bait) -> tuple[str, str, str]:
    """Draw a task and its question; tasks the scene cannot support (a relation needs two separated
    single objects) fall back to an existence question."""
    task = str(rng.choice(tasks, p=probs))
    qa = question(scene, task, rng, cfg.categories, cfg.colors, bait)
    if qa is None:
        task, qa = "exist", question(scene, "exist", rng, cfg.categories, cfg.colors, bait)
    return task, *qa


def make_split(cfg: WorldConfig, split: str, size: int | None = None) -> list[WorldExample]:
    """The examples of `split` (in-memory; `write_split` puts them on disk)."""
    out: list[WorldExample] = []
    if split == "pretrain":
        n = cfg.pretrain_size if size is None else size
        for i in range(n):
            seed = scene_seed(cfg, split, i)
            scene, rng = sample_scene(cfg, seed, "biased"), np.random.default_rng((seed, 1))
            sid = f"pretrain-{i:07d}"
            q, ref = question(scene, "describe", rng, cfg.categories, cfg.colors)
            out.append(WorldExample(f"{sid}-0", sid, q, ref, "describe", scene, seed))
            for k in range(cfg.pretrain_qa_per_scene):
                task, q, ref = _qa(cfg, scene, rng, tuple(PRETRAIN_QA), tuple(PRETRAIN_QA.values()), None)
                out.append(WorldExample(f"{sid}-{k + 1}", sid, q, ref, task, scene, seed))
        return out
    if split == "preference":
        n = cfg.preference_size if size is None else size
        for i in range(n):
            seed = scene_seed(cfg, split, i)
            rng = np.random.default_rng((seed, 1))
            mode = "counter" if rng.random() < cfg.preference_counter_p else "biased"
            scene = sample_scene(cfg, seed, mode, exclude=cfg.preference_heldout)
            if rng.random() < cfg.preference_describe_p:
                task, (q, ref) = "describe", question(scene, "describe", rng, cfg.categories, cfg.colors)
            else:
                task, q, ref = _qa(cfg, scene, rng, QA_TASKS, None, baits(scene, cfg))
            ref = reference_voice(scene, task, ref, rng, cfg.reference_omit_small_p)
            sid = f"preference-{i:07d}"
            out.append(WorldExample(sid, sid, q, ref, task, scene, seed))
        return out
    if split not in SPLIT_PLANS:
        raise ValueError(f"unknown split {split!r}; known: pretrain, preference, {', '.join(EVAL_SPLITS)}")
    mode, tasks, probs = SPLIT_PLANS[split]
    n = cfg.eval_sizes.get(split, 0) if size is None else size
    for i in range(n):
        seed = scene_seed(cfg, split, i)
        rng = np.random.default_rng((seed, 1))
        scene_mode = mode if mode != "mixed" else "counter" if rng.random() < cfg.eval_counter_p else "biased"
        scene = sample_scene(cfg, seed, scene_mode)
        if tasks == ("describe",):
            task, ref = "describe", question(scene, "describe", rng, cfg.categories, cfg.colors)[1]
            q = (
                DESCRIBE_QUERIES[0]
                if split == "amber_gen"
                else DESCRIBE_QUERIES[int(rng.integers(len(DESCRIBE_QUERIES)))]
            )
        else:
            task, q, ref = _qa(
                cfg, scene, rng, tasks, probs, baits(scene, cfg) if scene_mode == "counter" else None
            )
        sid = f"{split}-{i:06d}"
        out.append(WorldExample(sid, sid, q, ref, task, scene, seed))
    return out


def write_split(cfg: WorldConfig, split: str, out_dir: str | Path, size: int | None = None) -> Path:
    """Write `split` as `data.jsonl` + `images/` + `split.json` under `out_dir/split` and return that folder.

    Every file is written under a per-process temporary name and renamed into place, so processes that build the
    same split at once (two evaluations sharing a cache) never see, or leave, a half-written file.
    """
    folder = Path(out_dir) / split
    (folder / "images").mkdir(parents=True, exist_ok=True)
    examples = make_split(cfg, split, size)
    written: set[str] = set()
    tmp = f".tmp-{os.getpid()}"
    with open(folder / f"data.jsonl{tmp}", "w") as f:
        for ex in examples:
            image = f"images/{ex.image_id}.png"
            if ex.image_id not in written:
                ex.render(cfg.image_size).save(folder / f"{image}{tmp}", format="PNG")
                (folder / f"{image}{tmp}").replace(folder / image)
                written.add(ex.image_id)
            f.write(
                json.dumps(
                    {
                        "id": ex.id,
                        "image": image,
                        "query": ex.query,
                        "reference": ex.reference,
                        "task": ex.task,
                        "scene": ex.scene.to_dict(),
                    }
                )
                + "\n"
            )
    (folder / f"data.jsonl{tmp}").replace(folder / "data.jsonl")
    meta = split_meta(cfg, split) | {"size": len(examples), "scenes": len(written)}
    (folder / f"split.json{tmp}").write_text(json.dumps(meta, indent=1))
    (folder / f"split.json{tmp}").replace(folder / "split.json")
    return folder


def split_meta(cfg: WorldConfig, split: str) -> dict:
    """What a benchmark needs to know about the world besides the records: lexicon and priors."""
    return {
        "split": split,
        "world": cfg.fingerprint(),
        "image_size": cfg.image_size,
        "categories": list(cfg.categories),
        "colors": list(cfg.colors),
        "heldout": list(cfg.preference_heldout),
        "co_occurrence": [list(t) for t in cfg.co_occurrence],
        "color_priors": [list(t) for t in cfg.color_priors],
    }


def as_examples(cfg: WorldConfig, examples: list[WorldExample]) -> list[Example]:
    """In-memory `ovip.records.Example`s (images rendered), as `load_split` would read them from disk."""
    return [
        Example(
            e.id,
            e.query,
            e.reference,
            e.render(cfg.image_size),
            None,
            {"task": e.task, "scene": e.scene.to_dict()},
        )
        for e in examples
    ]


def load_split(folder: str | Path, with_images: bool = True) -> tuple[list[Example], dict]:
    """Read a split folder into `ovip.records.Example`s (meta: task, scene) and its `split.json`."""
    folder = Path(folder)
    meta = json.loads((folder / "split.json").read_text())
    examples = []
    with open(folder / "data.jsonl") as f:
        for line in f:
            r = json.loads(line)
            path = folder / r["image"]
            image = Image.open(path).convert("RGB") if with_images else None
            examples.append(
                Example(
                    r["id"],
                    r["query"],
                    r["reference"],
                    image,
                    str(path),
                    {"task": r["task"], "scene": r["scene"]},
                )
            )
    return examples, meta
