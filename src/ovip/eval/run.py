"""Score an existing responses file on one benchmark: `evaluate_responses` (the body of `ovip eval`).

No model is loaded here. AMBER (generative and discriminative) and CHAIR with the synonym parser need
no judge either; Object HalBench's LLM extraction, MMHal and LLaVA-Bench call a judge through `judge`
(an `ovip.config.EvalJudgeConfig`) or `judge_fn` (any `messages -> reply text | None`, e.g. a test double).

Data layout per benchmark (`data_dir`; `ovip.eval.layout` finds the files, docs/evaluation.md lists them):
  amber_gen / amber_dis  annotations.json, relation.json, safe_words.txt[, query_*.json]: flat, or AMBER's
                         repository (data/..., data/query/...) or its data/ folder
  chair / objecthal      synonyms.txt or synonyms_refine.txt; ground_truth.json ({image_id: [canonical
                         objects]}) or COCO 2014's annotations/ (instances_*, captions_*); objecthal also
                         questions.jsonl ({"id", "question"}) or the released obj_halbench_300_with_image.jsonl
  mmhal                  response_template.json or mmhal-bench_answer_template.json (96 records, in order;
                         ids are the positions 0..95) [images/ with the files named by image_src, for the
                         multimodal judge]
  llava_bench            questions.jsonl, context.jsonl, answers_gpt4.jsonl
  textvqa / realworldqa  questions.jsonl ({"id", "question", "answer" | "answers", ["category"], ["source"]},
  mmstar / cvbench         the layout of `ovip.eval.items`); scored by the rule graders of
                         `ovip.eval.general` (TextVQA: VQA soft accuracy; CV-Bench: the combined score)

Answer files: ours ({"id", "response"}) or each benchmark's official ones (`ovip.eval.responses.ANSWER_KEYS`).
`limit=N` scores the first N ids of the benchmark (in its order) and ignores answers to the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ovip.eval import amber, chair, general, items, layout, llava_bench, mmhal
from ovip.eval.judge_client import JudgeClient
from ovip.eval.responses import ANSWER_KEYS, GENERAL_KEYS, load_responses

BENCHMARKS = (
    "amber_gen",
    "amber_dis",
    "chair",
    "objecthal",
    "mmhal",
    "llava_bench",
    "textvqa",
    "realworldqa",
    "mmstar",
    "cvbench",
)
JudgeFn = Callable[[list[dict]], "str | None"]


def _answers(benchmark: str, path, ids, opts: dict) -> dict[str, str]:
    """{id: text} of the benchmark's first `limit` ids (all without a limit), validated against every id."""
    ids = [str(i) for i in ids]
    keys = ANSWER_KEYS.get(benchmark, GENERAL_KEYS)
    limit = opts.get("limit")
    if limit is None:
        return load_responses(path, ids, allow_missing=opts.get("allow_missing", False), keys=keys)
    answers = load_responses(path, ids, allow_missing=True, keys=keys)
    wanted = ids[:limit]
    missing = [i for i in wanted if i not in answers]
    if missing and not opts.get("allow_missing", False):
        raise ValueError(
            f"{path}: {len(missing)} of the first {limit} benchmark ids have no response "
            f"({', '.join(missing[:20])})"
        )
    return {i: answers[i] for i in wanted if i in answers}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _judge_fn(opts: dict, temperature: float) -> JudgeFn:
    if opts.get("judge_fn") is not None:
        return opts["judge_fn"]
    config = opts.get("judge")
    if config is None:
        raise ValueError("this benchmark needs a judge: pass judge=EvalJudgeConfig(...) or judge_fn=...")
    return JudgeClient(config, temperature)  # OViP's per-benchmark judge temperature


def _amber(benchmark: str, responses_path, data_dir: Path, opts: dict) -> dict:
    data = amber.load_amber(data_dir)
    answers = {
        int(k): v
        for k, v in _answers(benchmark, responses_path, items.expected_ids(benchmark, data_dir), opts).items()
    }
    if benchmark == "amber_gen":
        return amber.amber_generative(
            answers, data, opts.get("extractor"), opts.get("matcher"), details=opts.get("details", False)
        )
    return amber.amber_discriminative(answers, data, normalize=opts.get("normalize", True))


def _object_truth(
    data_dir: Path, opts: dict, synonyms: chair.Synonyms, keys: set[str]
) -> dict[str, set[str]]:
    """GT objects per image: ground_truth.json, else built for `keys` (COCO image ids) from COCO 2014's
    instance + caption files (CHAIR §2.3), an image with neither being a set of no objects."""
    path = Path(opts["ground_truth"]) if "ground_truth" in opts else data_dir / "ground_truth.json"
    if path.exists():
        return {str(k): set(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    coco = layout.coco_annotations(data_dir)
    if not coco:
        raise FileNotFoundError(
            f"no ground truth in {data_dir}: ground_truth.json or COCO 2014's "
            "annotations/instances_val2014.json + captions_val2014.json"
        )
    loaded = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in coco}
    truth = chair.coco_ground_truth(
        [d for n, d in loaded.items() if n.startswith("instances")],
        [d for n, d in loaded.items() if n.startswith("captions")],
        synonyms,
        image_ids={int(k) for k in keys if k.isdigit()},
    )
    return {k: truth.get(int(k), set()) if k.isdigit() else set() for k in keys}


def _chair(benchmark: str, responses_path, data_dir: Path, opts: dict) -> dict:
    synonyms = chair.load_synonyms(opts.get("synonyms") or layout.synonyms(data_dir, benchmark))
    answers = _answers(benchmark, responses_path, items.expected_ids(benchmark, data_dir), opts)
    questions = {str(r["id"]): r for r in items.object_questions(data_dir) or []}
    if "questions" in opts:
        questions = {str(q["id"]): q for q in _jsonl(Path(opts["questions"]))}
    keys = list(answers)
    # The GT is keyed by COCO image id: a question's "image_id", else its own id (our questions.jsonl).
    image_id = {i: str(questions.get(i, {}).get("image_id", i)) for i in keys}
    truth = _object_truth(data_dir, opts, synonyms, set(image_id.values()))
    gt_key = {i: i if i in truth else image_id[i] for i in keys}
    no_truth = [i for i in keys if gt_key[i] not in truth]
    if no_truth:
        raise ValueError(
            f"{len(no_truth)} answered ids have no ground-truth objects: {', '.join(no_truth[:20])}"
        )
    n_failed = 0
    if benchmark == "chair":
        mentioned = [chair.caption_objects(answers[i], synonyms)[1] for i in keys]
    else:  # Object HalBench: LLM extraction at temperature 0
        judge = _judge_fn(opts, 0.0)
        mentioned = []
        for i in keys:
            messages = chair.extraction_messages(questions[i]["question"], answers[i])
            objects = [] if messages is None else chair.parse_extraction_reply(judge(messages))
            if objects is None:  # failed extraction: counted, the response still counts with no objects
                n_failed += 1
                objects = []
            mentioned.append(chair.normalize_extracted(objects, synonyms))
    m = chair.chair_metrics(mentioned, [truth[gt_key[i]] for i in keys])
    return chair.chair_summary(m, "synonyms" if benchmark == "chair" else "llm", n_failed)


def _mmhal(responses_path, data_dir: Path, opts: dict) -> dict:
    records = json.loads(layout.mmhal_template(data_dir).read_text(encoding="utf-8"))
    answers = _answers("mmhal", responses_path, range(len(records)), opts)
    judge = _judge_fn(opts, 0.0)
    images_dir = opts.get("images_dir")
    ratings, types = [], []
    for key, text in answers.items():
        rec = records[int(key)]
        image = None
        if images_dir is not None:
            image = (Path(images_dir) / rec["image_src"].rsplit("/", 1)[-1]).read_bytes()
        messages = mmhal.mmhal_messages(
            rec["question"], rec["gt_answer"], text, rec.get("image_content", ()), image=image
        )
        ratings.append(mmhal.parse_rating(judge(messages)))
        types.append(rec.get("question_type", mmhal.QUESTION_TYPES[int(key) % 8]))
    return {**mmhal.mmhal_summary(ratings, types), "multimodal_judge": images_dir is not None}


def _llava_bench(responses_path, data_dir: Path, opts: dict) -> dict:
    questions = _jsonl(data_dir / "questions.jsonl")
    context = {c["image"]: c["caption"] for c in _jsonl(data_dir / "context.jsonl")}
    reference = {a["question_id"]: a["text"] for a in _jsonl(data_dir / "answers_gpt4.jsonl")}
    answers = _answers("llava_bench", responses_path, [q["question_id"] for q in questions], opts)
    judge = _judge_fn(opts, 0.2)
    pairs, categories = [], []
    for q in questions:
        if str(q["question_id"]) not in answers:
            continue
        messages = llava_bench.review_messages(
            context[q["image"]], q["text"], reference[q["question_id"]], answers[str(q["question_id"])]
        )
        pairs.append(llava_bench.parse_review(judge(messages)))
        categories.append(q["category"])
    scores = llava_bench.relative_scores(pairs, categories, include_failed=opts.get("include_failed", False))
    return {
        "benchmark": "llava_bench",
        "relative": scores["all"]["relative"],
        "n_failed": scores["all"]["n_failed"],
        "categories": scores,
    }


def _general(benchmark: str, responses_path, data_dir: Path, opts: dict) -> dict:
    records = _jsonl(Path(opts.get("questions", data_dir / "questions.jsonl")))
    answers = _answers(benchmark, responses_path, [r["id"] for r in records], opts)
    return general.score_general(benchmark, records, answers)


def evaluate_responses(benchmark: str, responses_path: str | Path, data_dir: str | Path, **opts) -> dict:
    """Score the answers in `responses_path` ({"id", "response"} JSONL or JSON list) on `benchmark`.

    Options: allow_missing (score a subset of ids), limit (only the first N ids), extractor / matcher /
    details (AMBER generative),
    normalize (AMBER discriminative), synonyms / ground_truth / questions (CHAIR, Object HalBench, general),
    images_dir (MMHal with the image), include_failed (LLaVA-Bench), judge / judge_fn (judged ones).
    Returns the benchmark's summary dict; the response file is validated first (one ValueError).
    """
    data_dir = Path(data_dir)
    if benchmark in ("amber_gen", "amber_dis"):
        return _amber(benchmark, responses_path, data_dir, opts)
    if benchmark in ("chair", "objecthal"):
        return _chair(benchmark, responses_path, data_dir, opts)
    if benchmark == "mmhal":
        return _mmhal(responses_path, data_dir, opts)
    if benchmark == "llava_bench":
        return _llava_bench(responses_path, data_dir, opts)
    if benchmark in general.GENERAL_KEYS:
        return _general(benchmark, responses_path, data_dir, opts)
    raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
