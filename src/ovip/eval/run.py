"""Score an existing responses file on one benchmark: `evaluate_responses` (the body of `ovip eval`).

No model is loaded here. AMBER (generative and discriminative) and CHAIR with the synonym parser need
no judge either; Object HalBench's LLM extraction, MMHal and LLaVA-Bench call a judge through `judge`
(a `JudgeClientConfig`) or `judge_fn` (any `messages -> reply text | None`, e.g. a test double).

Data layout per benchmark (`data_dir`):
  amber_gen / amber_dis  annotations.json, relation.json, safe_words.txt[, query_*.json]
  chair / objecthal      synonyms.txt and ground_truth.json ({image_id: [canonical objects]}, e.g. from
                         `ovip.eval.chair.coco_ground_truth`); objecthal also questions.jsonl
                         ({"id", "question"})
  mmhal                  response_template.json (96 records, in order; ids are the positions 0..95)
                         [images/ with the files named by image_src, for the multimodal judge]
  llava_bench            questions.jsonl, context.jsonl, answers_gpt4.jsonl
  textvqa / realworldqa  questions.jsonl ({"id", "question", "answer" | "answers", ["category"], ["source"]},
  mmstar / cvbench         the layout of `ovip.eval.items`); scored by the rule graders of
                         `ovip.eval.general` (TextVQA: VQA soft accuracy; CV-Bench: the combined score)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from ovip.eval import amber, chair, general, llava_bench, mmhal
from ovip.eval.judge_client import JudgeClient
from ovip.eval.responses import load_responses

BENCHMARKS = ("amber_gen", "amber_dis", "chair", "objecthal", "mmhal", "llava_bench", "textvqa", "realworldqa",
              "mmstar", "cvbench")
JudgeFn = Callable[[list[dict]], "str | None"]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _judge_fn(opts: dict, temperature: float) -> JudgeFn:
    if opts.get("judge_fn") is not None:
        return opts["judge_fn"]
    config = opts.get("judge")
    if config is None:
        raise ValueError("this benchmark needs a judge: pass judge=JudgeClientConfig(...) or judge_fn=...")
    if config.temperature != temperature:  # OViP's per-benchmark judge temperature (§8)
        config = dataclasses.replace(config, temperature=temperature)
    return JudgeClient(config)


def _amber(benchmark: str, responses_path, data_dir: Path, opts: dict) -> dict:
    data = amber.load_amber(data_dir)
    task = "generative" if benchmark == "amber_gen" else "discriminative"
    query_file = data_dir / f"query_{task}.json"
    if query_file.exists():
        ids = [q["id"] for q in amber.load_queries(data_dir, task)]
    else:
        ids = [e["id"] for e in data.annotations if (e["type"] == "generative") == (task == "generative")]
    answers = load_responses(responses_path, ids, allow_missing=opts.get("allow_missing", False))
    answers = {int(k): v for k, v in answers.items()}
    if task == "generative":
        return amber.amber_generative(answers, data, opts.get("extractor"), opts.get("matcher"),
                                      details=opts.get("details", False))
    return amber.amber_discriminative(answers, data, normalize=opts.get("normalize", True))


def _chair(benchmark: str, responses_path, data_dir: Path, opts: dict) -> dict:
    synonyms = chair.load_synonyms(opts.get("synonyms", data_dir / "synonyms.txt"))
    gt_raw = json.loads(Path(opts.get("ground_truth", data_dir / "ground_truth.json")).read_text())
    truth = {str(k): set(v) for k, v in gt_raw.items()}
    answers = load_responses(responses_path, truth, allow_missing=opts.get("allow_missing", False))
    ids = list(answers)
    n_failed = 0
    if benchmark == "chair":
        mentioned = [chair.caption_objects(answers[i], synonyms)[1] for i in ids]
    else:  # Object HalBench: LLM extraction at temperature 0
        judge = _judge_fn(opts, 0.0)
        questions = {str(q["id"]): q["question"] for q in _jsonl(Path(opts.get("questions",
                                                                               data_dir / "questions.jsonl")))}
        mentioned = []
        for i in ids:
            messages = chair.extraction_messages(questions[i], answers[i])
            objects = [] if messages is None else chair.parse_extraction_reply(judge(messages))
            if objects is None:  # failed extraction: counted, the response still counts with no objects
                n_failed += 1
                objects = []
            mentioned.append(chair.normalize_extracted(objects, synonyms))
    m = chair.chair_metrics(mentioned, [truth[i] for i in ids])
    return chair.chair_summary(m, "synonyms" if benchmark == "chair" else "llm", n_failed)


def _mmhal(responses_path, data_dir: Path, opts: dict) -> dict:
    records = json.loads((data_dir / "response_template.json").read_text(encoding="utf-8"))
    answers = load_responses(responses_path, range(len(records)), allow_missing=opts.get("allow_missing", False))
    judge = _judge_fn(opts, 0.0)
    images_dir = opts.get("images_dir")
    ratings, types = [], []
    for key, text in answers.items():
        rec = records[int(key)]
        image = None
        if images_dir is not None:
            image = (Path(images_dir) / rec["image_src"].rsplit("/", 1)[-1]).read_bytes()
        messages = mmhal.mmhal_messages(rec["question"], rec["gt_answer"], text, rec.get("image_content", ()),
                                        image=image)
        ratings.append(mmhal.parse_rating(judge(messages)))
        types.append(rec.get("question_type", mmhal.QUESTION_TYPES[int(key) % 8]))
    return {**mmhal.mmhal_summary(ratings, types), "multimodal_judge": images_dir is not None}


def _llava_bench(responses_path, data_dir: Path, opts: dict) -> dict:
    questions = _jsonl(data_dir / "questions.jsonl")
    context = {c["image"]: c["caption"] for c in _jsonl(data_dir / "context.jsonl")}
    reference = {a["question_id"]: a["text"] for a in _jsonl(data_dir / "answers_gpt4.jsonl")}
    answers = load_responses(responses_path, [q["question_id"] for q in questions],
                             allow_missing=opts.get("allow_missing", False))
    judge = _judge_fn(opts, 0.2)
    pairs, categories = [], []
    for q in questions:
        if str(q["question_id"]) not in answers:
            continue
        messages = llava_bench.review_messages(context[q["image"]], q["text"], reference[q["question_id"]],
                                               answers[str(q["question_id"])])
        pairs.append(llava_bench.parse_review(judge(messages)))
        categories.append(q["category"])
    scores = llava_bench.relative_scores(pairs, categories, include_failed=opts.get("include_failed", False))
    return {"benchmark": "llava_bench", "relative": scores["all"]["relative"], "n_failed": scores["all"]["n_failed"],
            "categories": scores}


def _general(benchmark: str, responses_path, data_dir: Path, opts: dict) -> dict:
    records = _jsonl(Path(opts.get("questions", data_dir / "questions.jsonl")))
    answers = load_responses(responses_path, [r["id"] for r in records],
                             allow_missing=opts.get("allow_missing", False))
    return general.score_general(benchmark, records, answers)


def evaluate_responses(benchmark: str, responses_path: str | Path, data_dir: str | Path, **opts) -> dict:
    """Score the answers in `responses_path` ({"id", "response"} JSONL or JSON list) on `benchmark`.

    Options: allow_missing (score a subset of ids), extractor / matcher / details (AMBER generative),
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
