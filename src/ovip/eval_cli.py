"""`ovip eval BENCHMARK`: answer a benchmark with a model (resumable) or score existing answers.

    ovip eval amber-gen --responses answers.jsonl --data DATA          # score only, no model loaded
    ovip eval amber-gen --model PATH [--adapter DIR] --data DATA       # generate, then score
    ovip eval world --model world|PATH [--adapter DIR]                 # the built-in world's suite

Benchmarks: amber-gen, amber-dis, chair, objecthal, mmhal, llava-bench (judged: objecthal, mmhal,
llava-bench need --eval.judge.base_url, an OpenAI-compatible base URL; the key is read from $OPENAI_API_KEY), world,
and the general-capability ones textvqa, realworldqa, mmstar, cvbench (rule-graded, no judge).

`--data DATA` is one folder: the scoring files of `ovip.eval.run` plus, to generate, the question file and the
images (`images/`, or `--images DIR`), in the benchmarks' released layouts (`ovip.eval.layout`,
docs/evaluation.md). For AMBER that is its repository as cloned (data/annotations.json, data/relation.json,
data/safe_words.txt, data/query/query_*.json) with the images in image/ or images/, or those files side by
side. For the general benchmarks it is questions.jsonl, one
{"id", "question", "image", "answer" | "answers" (TextVQA's list), ["category"], ["source"] (CV-Bench)}
per line, "question" being the full prompt, and images/. Their summary holds `accuracy` (%) and `dif_vs`
(accuracy minus the LLaVA-1.5 baselines of Table 8); General Acc_Dif is the four `dif_vs` summed
(`ovip.eval.general.acc_dif`).

`--limit N` answers and scores only the first N questions (in the benchmark's order). The model runs on
the recipe's `model.device` / `model.dtype` when `--config` (or `--model.device`) gives one, else on CUDA when
present, else on the CPU; summary.json records the device.

OUTPUT (`--output`, default eval/<benchmark>) receives:
    responses.jsonl   {"id", "response"} per line, appended after every batch; a rerun with the same model,
                      adapter and decoding skips the ids already there (resume)
    generation.json   model, adapter, dtype and decoding of those responses; a rerun that differs is refused,
                      so answers of two checkpoints are never mixed
    summary.json      {"benchmark", "metrics", "device", ...}; the metrics also print as one table (blank:
                      a category with no questions)
For `world`, OUTPUT holds summary.json and one <split>.jsonl per benchmark: each item's id, query, answer,
reference and what its metrics counted (`ovip.world.bench.ITEM_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ovip.config import Config

BENCHMARKS = {
    "amber-gen": "amber_gen",
    "amber-dis": "amber_dis",
    "chair": "chair",
    "objecthal": "objecthal",
    "mmhal": "mmhal",
    "llava-bench": "llava_bench",
    "textvqa": "textvqa",
    "realworldqa": "realworldqa",
    "mmstar": "mmstar",
    "cvbench": "cvbench",
}
JUDGED = ("objecthal", "mmhal", "llava_bench")
HELP = (
    "world (the built-in world's suite), amber-gen, amber-dis, chair, objecthal, mmhal, llava-bench; "
    "general capability: textvqa, realworldqa, mmstar, cvbench"
)


def eval_device(cfg: Config, from_config: bool) -> str:
    """`model.device` when the recipe or an override set it (checked: a CUDA device needs CUDA), else
    CUDA when present, else the CPU."""
    import torch

    from ovip.config import check_device

    if from_config:
        check_device(cfg.model.device, "model.device")
        return cfg.model.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_eval(args, cfg: Config, device_from_config: bool = False) -> int:
    """The body of `ovip eval`; returns the exit code (bad input raises ValueError / FileNotFoundError)."""
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.benchmark == "world":
        if args.limit is not None or args.images:
            raise ValueError(
                "world evaluates its own splits (sizes: --world.eval_sizes): --limit and --images "
                "do not apply"
            )
        return _eval_world(args, cfg, eval_device(cfg, device_from_config))
    name = args.benchmark.replace("_", "-")
    if name not in BENCHMARKS:
        raise ValueError(
            f"unknown benchmark {args.benchmark!r}; choose one of world, {', '.join(BENCHMARKS)}"
        )
    benchmark = BENCHMARKS[name]
    if bool(args.responses) == bool(args.model):
        raise ValueError(
            "give either --responses FILE (score existing answers) or --model PATH (generate them)"
        )
    if not args.data:
        raise ValueError(f"{name} needs --data DIR: the benchmark's files (see `ovip.eval_cli`)")
    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir} is not a folder")
    output = Path(args.output or Path("eval") / name)
    opts = _score_options(benchmark, args, cfg, data_dir)
    opts["limit"] = args.limit

    record: dict = {"benchmark": name, "data": str(data_dir), "limit": args.limit}
    if args.responses:
        responses = Path(args.responses)
        if not responses.is_file():
            raise FileNotFoundError(f"--responses {responses} does not exist")
        opts["allow_missing"] = True  # like AMBER's inference.py, score the ids the file answers
    else:
        responses = output / "responses.jsonl"
        device = eval_device(cfg, device_from_config)
        record.update(_generate(benchmark, args, cfg, data_dir, output, responses, device), device=device)
    metrics = evaluate(benchmark, responses, data_dir, opts)
    metrics["degeneration"] = degeneration(benchmark, responses)
    answered, expected = _coverage(benchmark, responses, data_dir, args.limit)
    record.update(
        responses=str(responses),
        n_answered=answered,
        n_expected=expected,
        complete=answered == expected,
        metrics=metrics,
    )
    _write_summary(output, record)
    title = f"{name}: {answered} of {expected} answered" + ("" if answered == expected else " (PARTIAL)")
    print_table(title, metrics)
    print(f"summary: {output / 'summary.json'}")
    return 0


def degeneration(benchmark: str, responses: Path) -> dict:
    """Length, repeated 3-grams, distinct-n and the share cut at max_new_tokens (`ovip.eval.degeneration`) of
    the answers in `responses`: what a hallucination metric does not see. `cut` is known for answers ovip
    generated (each line records it) and None for a file from elsewhere."""
    from ovip.eval.degeneration import text_stats
    from ovip.eval.responses import ANSWER_KEYS, GENERAL_KEYS, read_responses

    keys = ANSWER_KEYS.get(benchmark, GENERAL_KEYS).texts
    records = [r for r in read_responses(responses) if isinstance(r, dict)]
    texts = [next((r[k] for k in keys if isinstance(r.get(k), str)), None) for r in records]
    kept = [(t, r.get("cut")) for t, r in zip(texts, records, strict=True) if t is not None]
    cuts = [c for _, c in kept]
    return text_stats([t for t, _ in kept], cuts if all(isinstance(c, bool) for c in cuts) else None)


def evaluate(benchmark: str, responses: Path, data_dir: Path, opts: dict) -> dict:
    from ovip.eval.run import evaluate_responses

    return evaluate_responses(benchmark, responses, data_dir, **opts)


def _score_options(benchmark: str, args, cfg: Config, data_dir: Path) -> dict:
    opts: dict = {}
    if benchmark in JUDGED:
        if not cfg.eval.judge.base_url:
            raise ValueError(
                f"{benchmark} is scored by an LLM judge: pass --eval.judge.base_url URL "
                "(OpenAI-compatible, e.g. https://api.openai.com/v1; --eval.judge.model, default "
                f"{cfg.eval.judge.model}) and set ${cfg.eval.judge.api_key_env}"
            )
        opts["judge"] = cfg.eval.judge
    if benchmark == "mmhal":
        from ovip.eval.layout import images_dir

        images = images_dir(data_dir, args.images)
        if images.is_dir():
            opts["images_dir"] = images  # OViP's MMHal judge sees the image (the paper's refinement, A.2)
    return opts


def _generate(
    benchmark: str, args, cfg: Config, data_dir: Path, output: Path, responses: Path, device: str
) -> dict:
    """Answer every question (the first `--limit`) not yet in `responses`; returns what summary.json records."""
    from ovip.eval.generate import answered_ids, generate_responses, make_generate_fn
    from ovip.eval.items import check_images, load_items
    from ovip.policy.model import check_model_path

    items = load_items(benchmark, data_dir, images_dir=args.images)
    done = answered_ids(responses, items)
    items = items[: args.limit]
    check_images([it for it in items if str(it.id) not in done])
    model, adapter = _resolve(args.model, cfg), _adapter(args.adapter)
    check_model_path(model)
    run = {
        "benchmark": benchmark,
        "model": model,
        "adapter": adapter,
        "dtype": cfg.model.dtype,
        "decoding": {k: v for k, v in dataclasses.asdict(cfg.eval).items() if k != "batch_size"},
    }
    _check_same_run(output, run, bool(done))
    n_generated = 0
    pending = [it for it in items if str(it.id) not in done]
    if pending:
        policy = _load_policy(model, adapter, cfg, device)
        n_generated = generate_responses(
            make_generate_fn(policy, cfg.eval), items, responses, cfg.eval.batch_size, seed=cfg.eval.seed
        )
    return {**run, "n_generated": n_generated, "n_resumed": len(items) - len(pending)}


def _check_same_run(output: Path, run: dict, resuming: bool) -> None:
    path = output / "generation.json"
    if resuming and path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        for key, value in run.items():
            if before.get(key) != value:
                raise ValueError(
                    f"{output} holds responses of another run ({key}: {before.get(key)!r} there, "
                    f"{value!r} now); pass another --output or delete {output / 'responses.jsonl'}"
                )
    output.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")


def _local(path: str | None) -> str | None:
    """A local path made absolute (so a resume from another folder compares equal); hub ids unchanged."""
    return str(Path(path).resolve()) if path and Path(path).exists() else path


def _adapter(path: str | None) -> str | None:
    """The adapter folder, also from a run or checkpoint folder (resolved now, so the record names the step)."""
    if not path:
        return None
    from ovip.policy.model import resolve_adapter

    return str(resolve_adapter(path).resolve())


def _resolve(model: str, cfg: Config) -> str:
    from ovip.world.resolve import model_path

    cfg.model.path = model  # 'world' resolves to the built-in base model (built on first use)
    return _local(model_path(cfg))


def _load_policy(model: str, adapter: str | None, cfg: Config, device: str):
    from ovip.policy.model import Policy

    # finetune="none": no fresh LoRA on a plain model, and a loaded adapter stays frozen.
    return Policy.from_pretrained(
        model, dtype=cfg.model.dtype, device=device, adapter=adapter, finetune="none"
    )


def _coverage(benchmark: str, responses: Path, data_dir: Path, limit: int | None) -> tuple[int, int]:
    from ovip.eval.items import expected_ids
    from ovip.eval.responses import ANSWER_KEYS, GENERAL_KEYS, load_responses

    ids = expected_ids(benchmark, data_dir)
    answered = load_responses(
        responses, ids, allow_missing=True, keys=ANSWER_KEYS.get(benchmark, GENERAL_KEYS)
    )
    return sum(i in answered for i in ids[:limit]), len(ids[:limit])


def _eval_world(args, cfg: Config, device: str) -> int:
    """The built-in world's suite (`ovip.world.bench`): generates on every evaluation split and scores it."""
    from ovip.config.world import EVAL_SPLITS
    from ovip.eval.generate import make_generate_fn
    from ovip.world.bench import SCORERS, evaluate_world_items, write_items
    from ovip.world.judge import WorldJudge
    from ovip.world.resolve import world_splits

    if args.responses or args.data:
        raise ValueError("world generates its answers on its own splits: --responses and --data do not apply")
    model, adapter = _resolve(args.model or cfg.model.path, cfg), _adapter(args.adapter)
    output = Path(args.output or Path("eval") / "world")
    splits = world_splits(cfg, [name for name in EVAL_SPLITS if name in SCORERS])  # never the training splits
    policy = _load_policy(model, adapter, cfg, device)
    metrics, items = evaluate_world_items(
        make_generate_fn(policy, cfg.eval), splits, WorldJudge(), batch_size=cfg.eval.batch_size
    )
    record = {
        "benchmark": "world",
        "model": model,
        "adapter": adapter,
        "dtype": cfg.model.dtype,
        "device": device,
        "decoding": dataclasses.asdict(cfg.eval),
        "metrics": metrics,
        "items": write_items(output, items),  # split -> its per-item JSONL beside summary.json
    }
    _write_summary(output, record)
    print_table(f"world: {', '.join(splits)}", metrics)
    print(f"summary: {output / 'summary.json'}; per-item answers: {', '.join(record['items'].values())}")
    return 0


def _write_summary(output: Path, record: dict) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "summary.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def flatten(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(name, value) rows of the scalar metrics, nested blocks as `block/name`; the unrounded `exact`
    blocks and the world's `samples` and `per_task` blocks are left to summary.json."""
    rows = []
    for key, value in metrics.items():
        if key in ("exact", "samples", "per_task", "benchmark"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flatten(value, f"{name}/")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            rows.append((name, value))
    return rows


def print_table(title: str, metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in flatten(metrics):
        shown = "" if value is None else round(value, 3) if isinstance(value, float) else value
        table.add_row(name, str(shown))
    console = Console()
    console.print(title, style="bold", highlight=False)
    console.print(table)
