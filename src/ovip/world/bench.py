"""World versions of the paper's benchmarks (Appendix A.2), exact because every scene's truth is known.

| split       | mirrors            | reported                                                                     |
| ----------- | ------------------ | ---------------------------------------------------------------------------- |
| amber_gen   | AMBER generative   | CHAIR, Cover, Hal, Cog (of prior-predicted objects), F1, prior share          |
| amber_dis   | AMBER discriminat. | yes/no F1 with "no" positive, accuracy, accuracy on prior-baiting questions   |
| objecthal   | Object HalBench    | CHAIR_r (response level), CHAIR_i, object F1                                  |
| mmhal       | MMHal-Bench        | world judge 0-10 mapped to 0-6 (x 0.6), hallucination rate (rating < 3)      |
| llava_bench | LLaVA-Bench (wild) | relative score = mean judge(response) / mean judge(reference) x 100           |
| general     | general QA         | accuracy of the core answer (yes/no, colour, count, relation), per task       |

All arithmetic is `ovip.eval.metrics` / `ovip.eval.mmhal` / `ovip.eval.llava_bench` (the same code as the
real benchmarks); this module only resolves the world's mentions and truths. `prior_share` is the part of
hallucinated mentions that the pretraining priors predict (`prior_kind`): a present anchor's absent partner
(`co_occurrence_share`) or a category named in its prior colour, that colour being another object's
(`color_prior_share`).
The caller supplies generation (`generate_fn(images, queries) -> responses`); nothing is loaded here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from tqdm.auto import tqdm

from ovip.eval.general import accuracy
from ovip.eval.llava_bench import relative_scores
from ovip.eval.metrics import normalize_yes_no, object_metrics, yes_no_metrics
from ovip.eval.mmhal import mmhal_summary
from ovip.records import Example, Judge
from ovip.world.judge import answer_ok, query_task
from ovip.world.parse import parse
from ovip.world.scene import Scene
from ovip.world.splits import load_split

GenerateFn = Callable[[list, list[str]], list[str]]


def _generate(generate_fn: GenerateFn, examples: list[Example], batch_size: int, desc: str, progress: bool) -> list[str]:
    out: list[str] = []
    for s in tqdm(range(0, len(examples), batch_size), desc=desc, disable=not progress):
        chunk = examples[s:s + batch_size]
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


def score_amber_gen(examples, responses, meta, judge=None) -> dict:
    mentioned, truth, baited = [], [], []
    kinds: Counter[str | None] = Counter()
    for ex, r in zip(examples, responses, strict=True):
        scene = Scene.from_dict(ex.meta["scene"])
        found = [m for m in _parse(r, meta).mentions if not m.negated]
        kinds.update(prior_kind(m, scene, meta) for m in found if m.category not in scene.categories())
        mentioned.append([m.category for m in found])  # AMBER keeps repeats
        truth.append(scene.categories())
        baited.append(_priors(meta, scene)[0])
    m = object_metrics(mentioned, truth, baited)
    n_hal = sum(kinds.values())
    share = lambda *ks: 100.0 * sum(kinds[k] for k in ks) / n_hal if n_hal else 0.0  # noqa: E731
    return {"chair": m.chair, "cover": m.cover, "hal": m.hal, "cog": m.cog, "f1": m.f1,
            "prior_share": share("co_occurrence", "color"), "co_occurrence_share": share("co_occurrence"),
            "color_prior_share": share("color"), "n": m.n_responses}


def score_objecthal(examples, responses, meta, judge=None) -> dict:
    mentioned = [set(_parse(r, meta).objects()) for r in responses]
    truth = [Scene.from_dict(ex.meta["scene"]).categories() for ex in examples]
    m = object_metrics(mentioned, truth)
    return {"chair_r": m.chair_r, "chair_i": m.chair_i, "f1": m.object_f1, "recall": m.recall,
            "precision": m.precision, "n": m.n_responses}


def score_amber_dis(examples, responses, meta, judge=None) -> dict:
    preds = [normalize_yes_no(r) for r in responses]
    labels = [_parse(ex.reference, meta).answer for ex in examples]
    bait_pred, bait_label = [], []
    for ex, p, y in zip(examples, preds, labels, strict=True):
        partners, colors = _priors(meta, Scene.from_dict(ex.meta["scene"]))
        q = _parse(ex.query, meta)
        asked = q.mentions[0] if q.mentions else None
        task = query_task(ex.query)
        if asked and ((task == "exist" and asked.category in partners) or
                      (task == "attribute" and colors.get(asked.category) == asked.color and y == "no")):
            bait_pred.append(p)
            bait_label.append(y)
    m = yes_no_metrics(preds, labels, positive="no")
    bait = yes_no_metrics(bait_pred, bait_label, positive="no")
    return {"f1": m.f1, "accuracy": m.accuracy, "precision": m.precision, "recall": m.recall,
            "invalid": m.n_invalid, "bait_accuracy": bait.accuracy, "n_bait": bait.n, "n": m.n}


def _judged(judge: Judge, examples, responses) -> list[float | None]:
    return [judge.judge(ex.query, [r], ex.reference)[0].score for ex, r in zip(examples, responses, strict=True)]


def score_mmhal(examples, responses, meta, judge) -> dict:
    # world judge 0-10 -> MMHal rating 0-6 (rounded: MMHal ratings are integers)
    ratings = [None if s is None else round(0.6 * s) for s in _judged(judge, examples, responses)]
    summary = mmhal_summary(ratings, [ex.meta["task"] for ex in examples])
    return {"score": summary["score"], "hallucination_rate": summary["hallucination_rate"],
            "per_task": summary["per_type"], "judge_failures": summary["n_failed"], "n": summary["n"]}


def score_llava_bench(examples, responses, meta, judge) -> dict:
    model = _judged(judge, examples, responses)
    ref = _judged(judge, examples, [ex.reference for ex in examples])
    pairs = [None if a is None or b is None else (b, a) for a, b in zip(model, ref, strict=True)]
    scores = relative_scores(pairs, [ex.meta["task"] for ex in examples])
    return {"score": scores["all"]["relative"], "per_task": {k: v["relative"] for k, v in scores.items() if k != "all"},
            "judge_failures": scores["all"]["n_failed"], "n": len(examples)}


def score_general(examples, responses, meta, judge=None) -> dict:
    correct: dict[str, list[bool]] = {}
    for ex, r in zip(examples, responses, strict=True):
        task = ex.meta["task"]
        ok = answer_ok(task, _parse(ex.query, meta), _parse(r, meta), _parse(ex.reference, meta))
        correct.setdefault(task, []).append(ok)
    everything = [x for v in correct.values() for x in v]
    return {"accuracy": accuracy(everything), "per_task": {t: accuracy(v) for t, v in correct.items()},
            "n": len(everything)}


SCORERS = {"amber_gen": score_amber_gen, "amber_dis": score_amber_dis, "objecthal": score_objecthal,
           "mmhal": score_mmhal, "llava_bench": score_llava_bench, "general": score_general}


def hf_generate_fn(model, processor, max_new_tokens: int = 40, temperature: float = 0.0, top_p: float = 1.0,
                   seed: int = 0) -> GenerateFn:
    """A plain batched `generate` over an already loaded model: greedy, or sampling at `temperature` / `top_p`
    (the paper's evaluation decoding is temperature 0.1, top_p 0.8). Prompts are left-padded."""
    import torch

    from ovip.policy.batch import prompt_text

    def generate(images, queries):
        tok = processor.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            prompts = [prompt_text(processor, q, True) for q in queries]
            enc = processor(text=prompts, images=images, return_tensors="pt", padding=True).to(model.device)
        finally:
            tok.padding_side = side
        kw = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, **kw)
        return [t.strip() for t in tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]

    return generate


def evaluate_world(generate_fn: GenerateFn, split_dirs: Mapping[str, str | Path], judge: Judge | None = None,
                   batch_size: int = 64, progress: bool = True, samples: int = 3) -> dict:
    """Generate on each world split in `split_dirs` (name -> folder) and score it.

    Returns {split: metrics} plus `hri_inputs` (the five a_i of Eq. 7, for `ovip.eval.metrics.hri`) when
    the five hallucination splits are present, and a few (query, response, reference) `samples` per split.
    """
    if judge is None:
        from ovip.world.judge import WorldJudge

        judge = WorldJudge()
    results: dict = {}
    for split, folder in split_dirs.items():
        if split not in SCORERS:
            raise ValueError(f"no world benchmark for split {split!r}; known: {sorted(SCORERS)}")
        examples, meta = load_split(folder)
        responses = _generate(generate_fn, examples, batch_size, f"world {split}", progress)
        results[split] = SCORERS[split](examples, responses, meta, judge)
        results[split]["samples"] = [
            {"query": e.query, "response": r, "reference": e.reference} for e, r in zip(examples[:samples], responses[:samples], strict=True)]
    keys = {"amber_gen_f1": ("amber_gen", "f1"), "mmhal_score": ("mmhal", "score"),
            "objecthal_f1": ("objecthal", "f1"), "llava_bench": ("llava_bench", "score"),
            "amber_dis_f1": ("amber_dis", "f1")}
    if all(split in results for split, _ in keys.values()):
        results["hri_inputs"] = {k: results[s][m] for k, (s, m) in keys.items()}
    return results
