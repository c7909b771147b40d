"""World versions of the paper's benchmarks (Appendix A.2), exact because every scene's truth is known.

| split       | mirrors            | reported                                                                     |
| ----------- | ------------------ | ---------------------------------------------------------------------------- |
| amber_gen   | AMBER generative   | CHAIR, Cover, Hal, Cog, F1; CHAIR once per object per answer; prior share,   |
|             |                    | partner-hallucination rate per co-occurrence prior (held-out prior apart)     |
| amber_dis   | AMBER discriminat. | yes/no F1 with "no" positive, accuracy per class, the constant-answer F1s,   |
|             |                    | accuracy on prior-baiting questions                                           |
| objecthal   | Object HalBench    | CHAIR_r (response level), CHAIR_i, object F1                                  |
| mmhal       | MMHal-Bench        | world judge 0-10 mapped to 0-6 (x 0.6), hallucination rate (rating < 3)      |
| llava_bench | LLaVA-Bench (wild) | relative score = mean judge(response) / mean judge(reference) x 100           |
| general     | general QA         | accuracy of the core answer (yes/no, colour, count, relation), per task       |

Every split also reports `fluency`: the share of answers that are world grammar and end where a sentence
ends (`parse_rate`), repeated object mentions per mention (`mention_repetition`), answers with a
contradiction, and the parser-free statistics of `ovip.eval.degeneration` (length, repeated 3-grams,
distinct-n, share cut at max_new_tokens), so that a hallucination metric can never improve by the text
falling apart unseen. Headline metrics carry 95% percentile-bootstrap intervals over items (`ci`,
`ovip.eval.bootstrap`): a difference inside them is not a difference.

Every split also gives one record per item (`evaluate_world_items`; `ovip eval world` writes them as
OUTPUT/<split>.jsonl): id, task, query, answer, reference, `cut`, the fluency flags (`parses`,
`repeated_mentions`, `contradiction`) and what the split's metrics counted for it (`ITEM_FIELDS`), so that the
summary's numbers can be recomputed from the items, and read.

All arithmetic is `ovip.eval.metrics` / `ovip.eval.mmhal` / `ovip.eval.llava_bench` (the same code as the
real benchmarks); this module only resolves the world's mentions and truths. `prior_share` is the part of
hallucinated mentions that the pretraining priors predict (`prior_kind`): a present anchor's absent partner
(`co_occurrence_share`) or a category named in its prior colour, that colour being another object's
(`color_prior_share`).
The caller supplies generation (`generate_fn(images, queries) -> [Answer]`); nothing is loaded here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ovip.eval import bootstrap as bs
from ovip.eval.degeneration import text_stats
from ovip.eval.general import accuracy
from ovip.eval.llava_bench import relative_scores
from ovip.eval.metrics import normalize_yes_no, object_metrics, yes_no_metrics
from ovip.eval.mmhal import mmhal_summary
from ovip.progress import Progress
from ovip.records import Answer, Example, Judge
from ovip.world.grammar import defects
from ovip.world.judge import answer_ok, query_task
from ovip.world.parse import parse
from ovip.world.scene import Scene
from ovip.world.splits import load_split

GenerateFn = Callable[[list, list[str]], list[Answer]]


def _generate(
    generate_fn: GenerateFn, examples: list[Example], batch_size: int, desc: str, progress: bool
) -> list[Answer]:
    out: list[Answer] = []
    for s in Progress(range(0, len(examples), batch_size), desc=desc, disable=not progress):
        chunk = examples[s : s + batch_size]
        out += generate_fn([e.image for e in chunk], [e.query for e in chunk])
    return out


def _priors(meta: dict, scene: Scene) -> tuple[set[str], dict[str, str]]:
    """(absent partners the co-occurrence priors predict, category -> prior colour) for a scene."""
    present = scene.categories()
    partners = {b for a, b, _ in meta["co_occurrence"] if a in present and b not in present}
    colors = {a: c for a, c, _ in meta["color_priors"] if a in present}
    return partners, colors


def prior_kind(mention, scene: Scene, meta: dict) -> str | None:
    """Which prior predicts a hallucinated mention: 'co_occurrence' (the absent partner of a present anchor),
    'color' (a category named in its prior colour where only another object has that colour), or None."""
    partners, _ = _priors(meta, scene)
    if mention.category in partners:
        return "co_occurrence"
    prior_color = {a: c for a, c, _ in meta["color_priors"]}.get(mention.category)
    if prior_color and mention.color == prior_color and any(g.color == prior_color for g in scene.groups):
        return "color"
    return None


def _parse(text: str, meta: dict):
    return parse(text, meta["categories"], meta["colors"])


def _ci(rows, metrics: dict[str, bs.Metric]) -> dict[str, list[float]]:
    return {
        name: [round(x, 3) for x in bs.interval(np.asarray(rows, dtype=float), fn)]
        for name, fn in metrics.items()
    }


def fluency(answers: list[Answer], meta: dict) -> dict:
    """The `fluency` block of every split (module docstring), with intervals for the two headline shares."""
    return _fluency(answers, meta)[0]


def _fluency(answers: list[Answer], meta: dict) -> tuple[dict, list[dict]]:
    """(the `fluency` block, each answer's flags)."""
    rows = []  # [parses, repeated mentions, mentions, contradiction, 1]
    for a in answers:
        parsed = _parse(a.text, meta)
        d = defects(a.text, parsed, meta["categories"], meta["colors"])
        rows.append([d.parses, d.repeated, len(parsed.mentions), d.contradictions > 0, 1])
    flags = [
        {"cut": a.cut, "parses": bool(r[0]), "repeated_mentions": int(r[1]), "contradiction": bool(r[3])}
        for a, r in zip(answers, rows, strict=True)
    ]
    counts = np.asarray(rows, dtype=float).reshape(-1, 5)
    ratios = {
        "parse_rate": bs.ratio(0, 4),
        "mention_repetition": bs.ratio(1, 2),
        "contradiction_rate": bs.ratio(3, 4),
    }
    out = {name: bs.point(counts, fn) for name, fn in ratios.items()}
    out.update(text_stats([a.text for a in answers], [a.cut for a in answers]))
    out["ci"] = _ci(counts, {k: ratios[k] for k in ("parse_rate", "mention_repetition")})
    return out, flags


def score_amber_gen(examples, answers, meta, judge=None) -> tuple[dict, list[dict]]:
    mentioned, truth, baited, rows, items = [], [], [], [], []
    kinds: Counter[str | None] = Counter()
    partner = {a: b for a, b, _ in meta["co_occurrence"]}
    baits: Counter[str] = Counter()
    bitten: Counter[str] = Counter()
    heldout = [k for k in partner if k in meta.get("heldout", ())]
    trained = [k for k in partner if k not in heldout]
    for ex, a in zip(examples, answers, strict=True):
        scene = Scene.from_dict(ex.meta["scene"])
        present = scene.categories()
        found = [m.category for m in _parse(a.text, meta).mentions if not m.negated]
        priors = [
            prior_kind(m, scene, meta)
            for m in _parse(a.text, meta).mentions
            if not m.negated and m.category not in present
        ]
        kinds.update(priors)
        mentioned.append(found)  # AMBER keeps repeats
        truth.append(present)
        baited.append(_priors(meta, scene)[0])
        unique = set(found)
        lured = sorted(partner[k] for k in trained if k in present and partner[k] not in present)
        items.append(
            {
                "mentions": found,
                "hallucinated": [c for c in found if c not in present],
                "prior_kinds": priors,
                "covered": sorted(unique & present),
                "truth": sorted(present),
                "partners_baited": lured,
                "partners_named": [b for b in lured if b in unique],
            }
        )
        rows.append(
            [
                len(found),
                sum(c not in present for c in found),
                len(present),
                len(unique & present),
                len(unique),
                len(unique - present),
            ]
        )
        for anchor, b in partner.items():
            if anchor in present and b not in present:
                baits[anchor] += 1
                bitten[anchor] += b in unique
    m = object_metrics(mentioned, truth, baited)
    n_hal = sum(kinds.values())
    share = lambda *ks: 100.0 * sum(kinds[k] for k in ks) / n_hal if n_hal else 0.0  # noqa: E731
    rate = lambda keys: 100.0 * sum(bitten[k] for k in keys) / max(1, sum(baits[k] for k in keys))  # noqa: E731
    chair, cover, chair_unique = bs.ratio(1, 0), bs.ratio(3, 2), bs.ratio(5, 4)
    summary = {
        "chair": m.chair,
        "cover": m.cover,
        "hal": m.hal,
        "cog": m.cog,
        "f1": m.f1,
        "chair_unique": bs.point(rows, chair_unique),
        "mentions_per_answer": m.n_mentions / max(1, m.n_responses),
        "prior_share": share("co_occurrence", "color"),
        "co_occurrence_share": share("co_occurrence"),
        "color_prior_share": share("color"),
        "partner_rate": rate(trained),
        "partner_rate_heldout": rate(heldout) if heldout else None,
        "partner_rate_per_anchor": {k: rate([k]) for k in partner},
        "ci": _ci(
            rows,
            {
                "chair": chair,
                "cover": cover,
                "f1": bs.harmonic(bs.complement(chair), cover),
                "chair_unique": chair_unique,
            },
        ),
        "n": m.n_responses,
    }
    return summary, items


def score_objecthal(examples, answers, meta, judge=None) -> tuple[dict, list[dict]]:
    mentioned = [set(_parse(a.text, meta).objects()) for a in answers]
    truth = [Scene.from_dict(ex.meta["scene"]).categories() for ex in examples]
    m = object_metrics(mentioned, truth)
    rows = [
        [bool(s - t), bool(s), len(s), len(s - t), len(t), len(s & t)]
        for s, t in zip(mentioned, truth, strict=True)
    ]
    precision, recall = bs.complement(bs.ratio(3, 2)), bs.ratio(5, 4)
    items = [
        {"objects": sorted(s), "hallucinated": sorted(s - t), "truth": sorted(t)}
        for s, t in zip(mentioned, truth, strict=True)
    ]
    summary = {
        "chair_r": m.chair_r,
        "chair_i": m.chair_i,
        "f1": m.object_f1,
        "recall": m.recall,
        "precision": m.precision,
        "ci": _ci(rows, {"chair_r": bs.ratio(0, 1), "f1": bs.harmonic(precision, recall)}),
        "n": m.n_responses,
    }
    return summary, items


def score_amber_dis(examples, answers, meta, judge=None) -> tuple[dict, list[dict]]:
    preds = [normalize_yes_no(a.text) for a in answers]
    labels = [_parse(ex.reference, meta).answer for ex in examples]
    bait_pred, bait_label, baits = [], [], []
    for ex, p, y in zip(examples, preds, labels, strict=True):
        partners, colors = _priors(meta, Scene.from_dict(ex.meta["scene"]))
        q = _parse(ex.query, meta)
        asked = q.mentions[0] if q.mentions else None
        task = query_task(ex.query)
        bait = bool(
            asked
            and (
                (task == "exist" and asked.category in partners)
                or (task == "attribute" and colors.get(asked.category) == asked.color and y == "no")
            )
        )
        baits.append(bait)
        if bait:
            bait_pred.append(p)
            bait_label.append(y)
    m = yes_no_metrics(preds, labels, positive="no")
    bait = yes_no_metrics(bait_pred, bait_label, positive="no")
    # [tp, predicted no, label no, label yes, yes right]; F1 ("no" positive) = 2 tp / (predicted no + label no)
    rows = [
        [p == y == "no", p == "no", y == "no", y == "yes", p == y == "yes"]
        for p, y in zip(preds, labels, strict=True)
    ]

    def f1(s):
        return np.where(
            s[..., 1] + s[..., 2] > 0, 200 * s[..., 0] / np.maximum(s[..., 1] + s[..., 2], 1), 0.0
        )

    n_no = sum(y == "no" for y in labels)
    items = [
        {"prediction": p, "label": y, "correct": p == y, "invalid": p is None, "bait": b}
        for p, y, b in zip(preds, labels, baits, strict=True)
    ]
    summary = {
        "f1": m.f1,
        "accuracy": m.accuracy,
        "precision": m.precision,
        "recall": m.recall,
        "no_accuracy": bs.point(rows, bs.ratio(0, 2)),
        "yes_accuracy": bs.point(rows, bs.ratio(4, 3)),
        "constant_no_f1": 200.0 * n_no / (len(labels) + n_no) if labels else 0.0,
        "constant_yes_f1": 0.0,
        "invalid": m.n_invalid,
        "bait_accuracy": bait.accuracy,
        "n_bait": bait.n,
        "ci": _ci(rows, {"f1": f1}),
        "n": m.n,
    }
    return summary, items


def _judged(judge: Judge, examples, texts) -> list[float | None]:
    return [judge.judge(ex.query, [t], ex.reference)[0].score for ex, t in zip(examples, texts, strict=True)]


def score_mmhal(examples, answers, meta, judge) -> tuple[dict, list[dict]]:
    # world judge 0-10 -> MMHal rating 0-6 (rounded: MMHal ratings are integers)
    scores = _judged(judge, examples, [a.text for a in answers])
    ratings = [None if s is None else round(0.6 * s) for s in scores]
    summary = mmhal_summary(ratings, [ex.meta["task"] for ex in examples])
    rows = [[r, 1] for r in ratings if r is not None]
    items = [
        {"judge_score": s, "rating": r, "judge_failed": r is None, "hallucinating": r is not None and r < 3}
        for s, r in zip(scores, ratings, strict=True)
    ]
    return {
        "score": summary["score"],
        "hallucination_rate": summary["hallucination_rate"],
        "per_task": summary["per_type"],
        "judge_failures": summary["n_failed"],
        "ci": _ci(rows, {"score": bs.ratio(0, 1, scale=1.0)}),
        "n": summary["n"],
    }, items


def score_llava_bench(examples, answers, meta, judge) -> tuple[dict, list[dict]]:
    model = _judged(judge, examples, [a.text for a in answers])
    ref = _judged(judge, examples, [ex.reference for ex in examples])
    pairs = [None if a is None or b is None else (b, a) for a, b in zip(model, ref, strict=True)]
    scores = relative_scores(pairs, [ex.meta["task"] for ex in examples])
    rows = [[a, b] for a, b in zip(model, ref, strict=True) if a is not None and b is not None]
    items = [
        {"judge_score": a, "reference_score": b, "judge_failed": a is None or b is None}
        for a, b in zip(model, ref, strict=True)
    ]
    return {
        "score": scores["all"]["relative"],
        "per_task": {k: v["relative"] for k, v in scores.items() if k != "all"},
        "judge_failures": scores["all"]["n_failed"],
        "ci": _ci(rows, {"score": bs.ratio(0, 1)}),
        "n": len(examples),
    }, items


def score_general(examples, answers, meta, judge=None) -> tuple[dict, list[dict]]:
    correct: dict[str, list[bool]] = {}
    items = []
    for ex, a in zip(examples, answers, strict=True):
        task = ex.meta["task"]
        ok = answer_ok(task, _parse(ex.query, meta), _parse(a.text, meta), _parse(ex.reference, meta))
        correct.setdefault(task, []).append(ok)
        items.append({"correct": bool(ok)})
    everything = [x for v in correct.values() for x in v]
    return {
        "accuracy": accuracy(everything),
        "per_task": {t: accuracy(v) for t, v in correct.items()},
        "ci": _ci([[x, 1] for x in everything], {"accuracy": bs.ratio(0, 1)}),
        "n": len(everything),
    }, items


# What each split's item records add to the common fields (id, task, query, answer, reference, cut, parses,
# repeated_mentions, contradiction):
ITEM_FIELDS = {
    "amber_gen": "mentions (non-negated, repeats kept), hallucinated (those not in the scene: summed over items "
    "and divided by the summed mentions, x 100, it is CHAIR), prior_kinds (of each hallucinated mention), "
    "covered, truth, partners_baited (absent partners of the scene's anchors, trained co-occurrence priors), "
    "partners_named (those the answer names: summed over items and divided by the summed baited, x 100, it is "
    "partner_rate)",
    "amber_dis": "prediction (yes / no / null), label, correct, invalid, bait (a prior-baiting question)",
    "objecthal": "objects (each once), hallucinated, truth",
    "mmhal": "judge_score (0-10), rating (0-6), judge_failed, hallucinating (rating < 3)",
    "llava_bench": "judge_score, reference_score (the judge on the reference answer), judge_failed",
    "general": "correct",
}
SCORERS = {
    "amber_gen": score_amber_gen,
    "amber_dis": score_amber_dis,
    "objecthal": score_objecthal,
    "mmhal": score_mmhal,
    "llava_bench": score_llava_bench,
    "general": score_general,
}
HRI_INPUTS = {
    "amber_gen_f1": ("amber_gen", "f1"),
    "mmhal_score": ("mmhal", "score"),
    "objecthal_f1": ("objecthal", "f1"),
    "llava_bench": ("llava_bench", "score"),
    "amber_dis_f1": ("amber_dis", "f1"),
}


def evaluate_world(
    generate_fn: GenerateFn,
    split_dirs: Mapping[str, str | Path],
    judge: Judge | None = None,
    batch_size: int = 64,
    progress: bool = True,
    samples: int = 5,
) -> dict:
    """Generate on each world split in `split_dirs` (name -> folder) and score it.

    Returns {split: metrics} (each with its `fluency` block and `samples`, the first few (query, response,
    reference) triples) plus `hri_inputs` (the five a_i of Eq. 7, for `ovip.eval.metrics.hri`) when the five
    hallucination splits are present.
    """
    return evaluate_world_items(generate_fn, split_dirs, judge, batch_size, progress, samples)[0]


def evaluate_world_items(
    generate_fn: GenerateFn,
    split_dirs: Mapping[str, str | Path],
    judge: Judge | None = None,
    batch_size: int = 64,
    progress: bool = True,
    samples: int = 5,
) -> tuple[dict, dict[str, list[dict]]]:
    """`evaluate_world`'s results and {split: one record per item, in the split's order} (module docstring)."""
    if judge is None:
        from ovip.world.judge import WorldJudge

        judge = WorldJudge()
    results: dict = {}
    items: dict[str, list[dict]] = {}
    for split, folder in split_dirs.items():
        if split not in SCORERS:
            raise ValueError(f"no world benchmark for split {split!r}; known: {sorted(SCORERS)}")
        examples, meta = load_split(folder)
        answers = _generate(generate_fn, examples, batch_size, f"world {split}", progress)
        results[split], scored = SCORERS[split](examples, answers, meta, judge)
        results[split]["fluency"], flags = _fluency(answers, meta)
        results[split]["samples"] = [
            {"query": e.query, "response": a.text, "reference": e.reference}
            for e, a in zip(examples[:samples], answers[:samples], strict=True)
        ]
        items[split] = [
            {
                "id": e.id,
                "task": e.meta.get("task"),
                "query": e.query,
                "answer": a.text,
                "reference": e.reference,
                **flag,
                **record,
            }
            for e, a, flag, record in zip(examples, answers, flags, scored, strict=True)
        ]
    if all(split in results for split, _ in HRI_INPUTS.values()):
        results["hri_inputs"] = {k: results[s][m] for k, (s, m) in HRI_INPUTS.items()}
    return results, items


def write_items(folder: str | Path, items: Mapping[str, list[dict]]) -> dict[str, str]:
    """Write each split's item records to FOLDER/<split>.jsonl; {split: file name}."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for split, records in items.items():
        names[split] = f"{split}.jsonl"
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        (folder / names[split]).write_text(text, encoding="utf-8")
    return names
