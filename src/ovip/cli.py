"""The `ovip` command line: quickstart, train, experiment, eval, analyze, report, export, world, serve, data.

Every command takes `--config RECIPE.yaml` and dotted overrides (`--loss.beta 0.2`); see `ovip.config`, and
`--log-level` (default `$OVIP_LOG_LEVEL`, else INFO) for the one `ovip` logger (`ovip.logs`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ovip import logs
from ovip.config import Config, load
from ovip.data.images import MAX_PIXELS
from ovip.errors import ConfigError


def _config(args, extra: list[str]) -> Config:
    return load(getattr(args, "config", None), extra)


def cmd_train(args, extra) -> int:
    from ovip.train.counters import NonFiniteTraining, NoUpdates, ServiceFailure
    from ovip.train.distributed import launch_command, launched_rank, shutdown
    from ovip.train.preflight import PreflightError
    from ovip.train.run import resume, train

    if args.nproc < 1:
        raise ConfigError(f"--nproc: must be >= 1, got {args.nproc}")
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:  # not yet under a launcher: start one
        import subprocess

        return subprocess.run(launch_command(args.nproc, args.argv)).returncode
    main = launched_rank() == 0  # the other ranks stop alike, silently: one message, one summary
    finished = False
    try:
        if args.resume:
            if args.config or args.overwrite:
                raise ConfigError(
                    "--resume continues a run with the config saved in its folder; "
                    "drop --config / --overwrite"
                )
            summary = resume(args.resume, extra)
        else:
            summary = train(_config(args, extra), overwrite=args.overwrite)
        finished = True
    except PreflightError as e:
        print(f"ovip: preflight failed: {e}", file=sys.stderr)
        return 2
    except (NonFiniteTraining, ServiceFailure, NoUpdates) as e:
        finished = True  # a stop every rank took together: all of them are alive to meet at the end
        if main:
            print(f"ovip: training stopped: {e}", file=sys.stderr)
        return 1
    finally:
        shutdown(finished)
    if main:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_quickstart(args, extra) -> int:
    from ovip.experiment.quickstart import quickstart

    if args.seeds < 1:
        raise ConfigError(f"--seeds: must be >= 1, got {args.seeds}")
    quickstart(args.config or "world", extra, seeds=args.seeds)
    return 0


def cmd_eval(args, extra) -> int:
    from ovip.eval_cli import run_eval

    # The world suite decodes with the world recipe's `eval` settings unless a recipe is given, so that
    # `ovip eval world` and `ovip quickstart` measure with the same decoding.
    recipe = args.config or ("world" if args.benchmark == "world" else None)
    device_set = bool(args.config) or any(t.split("=", 1)[0] == "--model.device" for t in extra)
    return run_eval(args, load(recipe, extra), device_from_config=device_set)


def cmd_experiment(args, extra) -> int:
    from pathlib import Path

    from ovip.experiment.runner import run_experiment
    from ovip.experiment.spec import load_spec, override_map

    spec = load_spec(args.spec)
    if args.config:
        spec.recipe = args.config
    if extra:  # dotted overrides for every cell, after the spec's own
        spec.overrides = {**spec.overrides, **override_map(extra)}
    out = Path(args.output or Path("experiments") / spec.name)
    data = run_experiment(spec, out, progress=lambda line: print(line, flush=True))
    print((out / "results.md").read_text())
    print(
        f"results: {out / 'results.json'}, {out / 'results.md'}"
        + (f", {data['figure']}" if data["figure"] else "")
    )
    return 0


def cmd_report(args, extra) -> int:
    from ovip.report import build_report

    for name in ("gallery", "worst"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    path = build_report(
        args.runs,
        args.output,
        eval_paths=args.eval or [],
        n_random=args.gallery,
        n_worst=args.worst,
        seed=args.seed,
    )
    print(path)
    return 0


def cmd_analyze(args, extra) -> int:
    from pathlib import Path

    output = Path(args.output) if args.output else None
    if args.analysis == "dynamics":
        from ovip.analysis.dynamics import analyze_dynamics

        data = analyze_dynamics(Path(args.run), output, n_windows=args.windows)
    elif args.analysis == "negatives":
        from ovip.analysis.negatives import analyze_negatives

        data = analyze_negatives(Path(args.run), output)
    else:
        from ovip.analysis.mass_shift import analyze_mass_shift

        data = analyze_mass_shift(
            Path(args.run), output, n_prompts=args.prompts, k=args.k, seed=args.seed, device=args.device
        )
    print(Path(data["files"]["md"]).read_text())
    print("files: " + ", ".join(data["files"].values()))
    return 0


def cmd_export(args, extra) -> int:
    from ovip.config import check_device
    from ovip.export import export

    check_device(args.device, "--device")
    record = export(
        args.source,
        args.output,
        merge=args.merge,
        model=args.model,
        dtype=args.dtype,
        overwrite=args.overwrite,
        device=args.device,
    )
    what = {"merged": "base + adapter merged", "adapter": "PEFT adapter", "full": "full fine-tune"}
    print(f"{record.folder}: {what[record.kind]} ({record.dtype}), base {record.base}; see its README.md")
    return 0


def cmd_world(args, extra) -> int:
    from ovip.world.resolve import model_path, world_splits

    cfg = _config(args, extra)
    if args.action == "build":
        for name, path in world_splits(cfg).items():
            print(f"{name}\t{path}")
    else:
        print(model_path(cfg))
    return 0


def cmd_data(args, extra) -> int:
    from pathlib import Path

    from ovip.data import check_examples, detect_format, load_examples
    from ovip.data.files import check_data_file

    if args.max_length is not None and not args.model:
        raise ValueError("--max-length needs --model: lengths are counted with the model's processor")
    if args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    check_data_file(Path(args.file))  # before the processor loads or anything reads it (docs/data.md)
    processor = None
    if args.model:
        from ovip.policy.model import check_model_path
        from ovip.policy.processor import load_processor

        check_model_path(args.model)
        processor = load_processor(args.model)
    data_format = detect_format(args.file) if args.format == "auto" else args.format
    examples = load_examples(args.file, format=data_format)
    print(
        f"{args.file}: {data_format} format{' (detected)' if args.format == 'auto' else ''}; pixel limit "
        f"{args.max_pixels:,} (--max-pixels; training: train.max_image_pixels)"
    )
    report = check_examples(
        examples, processor=processor, max_length=args.max_length, max_pixels=args.max_pixels
    )
    print(report.format())
    return 0 if report.ok else 1


def cmd_serve(args, extra) -> int:
    try:
        from ovip.services.chat_server import make_app
        from ovip.services.server import ServeLimits, api_key_for, serve
    except ImportError as e:
        print(f"ovip serve needs fastapi and uvicorn ({e}): pip install 'ovip[serve]'", file=sys.stderr)
        return 2

    api_key_for(args.host)  # refuse an off-loopback address without a token before loading anything
    body_cap = args.max_body_bytes or (8_000_000 if args.service == "policy" else 1_000_000)
    device, dtype = args.device or "cuda", args.dtype or "bfloat16"
    limits = ServeLimits(
        body_cap, args.max_seconds, args.header_timeout, args.body_timeout, args.max_connections
    )
    if args.service == "policy":
        from ovip.services.policy import policy_app
        from ovip.world.resolve import model_path

        cfg = _config(args, extra)
        cfg.model.path = args.model
        app = policy_app(args, cfg, model_path(cfg))  # `world`: the recipe's base model, built on first use
    elif args.service == "judge":
        from ovip.feedback.serve import hf_chat_reply, world_reply

        name = args.served_model_name or args.model
        reply = world_reply() if args.model == "world" else hf_chat_reply(args.model, device, dtype)
        app = make_app(reply, model=name, strict_model=True, max_prompt_chars=args.max_prompt_chars)
    else:
        from ovip.negatives.serve import DiffusersBackend, WorldBackend, make_images_app

        if args.model == "world":
            backend = WorldBackend(_config(args, extra).world)
        else:
            try:
                backend = DiffusersBackend.load(args.model, dtype=dtype, device=device)
            except Exception as e:
                print(
                    f"ovip: serve images: cannot load {args.model}: {type(e).__name__}: "
                    f"{' '.join(str(e).split())[:300]}",
                    file=sys.stderr,
                )
                return 1
        app = make_images_app(
            backend,
            args.served_model_name or args.model,
            max_batch=args.max_batch or 4,
            batch_wait=args.batch_wait,
        )
    serve(app, args.host, args.port, limits)
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", help="DEBUG | INFO | WARNING | ERROR (default: $OVIP_LOG_LEVEL, else INFO)"
    )
    p = argparse.ArgumentParser(
        prog="ovip",
        description="OViP: online vision-language preference learning.",
        epilog="Any command also takes dotted config overrides, e.g. --loss.beta 0.2",
    )
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser(
        "quickstart",
        parents=[common],
        help="world -> base model -> eval -> OViP one epoch -> eval; before/after table and report",
    )
    q.add_argument("--config", help="YAML recipe (default: the built-in `world` recipe)")
    q.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="this many base models (world.pretrain.seed p, p+1, ...; each pretrained once and cached), one "
        "OViP run on each; the table reports mean ± std and the spread over them",
    )
    q.set_defaults(func=cmd_quickstart)

    x = sub.add_parser(
        "experiment",
        parents=[common],
        help="methods x seeds x evaluation, resumable cell by cell: the paper's tables on the world",
    )
    x.add_argument("spec", help="a spec YAML or a built-in name: paper, paper-long, smoke, quickstart")
    x.add_argument(
        "--config", help="the recipe every cell starts from (default: the spec's, usually `world`)"
    )
    x.add_argument(
        "--output", "-o", help="folder (default: experiments/<spec name>); a rerun skips finished cells"
    )
    x.set_defaults(func=cmd_experiment)

    t = sub.add_parser("train", parents=[common], help="run the OViP online loop (Algorithm 1)")
    t.add_argument("--config", help="YAML recipe")
    t.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its newest complete checkpoint; only --train.epochs and "
        "the judge/describer connection settings may be given with it",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a run folder that already holds a run (its ovip files are deleted)",
    )
    t.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel ranks: runs `accelerate launch --config_file configs/accelerate/ddp.yaml "
        "--num_processes N -m ovip.cli train ...` (one per GPU; on CPU over gloo)",
    )
    t.set_defaults(func=cmd_train)

    from ovip.eval_cli import HELP

    e = sub.add_parser(
        "eval",
        parents=[common],
        help="evaluate a model or existing responses on a benchmark",
        description=f"Benchmarks: {HELP}. Data layouts: docs/evaluation.md.",
    )
    e.add_argument("benchmark", help=HELP)
    e.add_argument(
        "--config", help="YAML recipe (eval.* decoding; model.device / model.dtype, else CUDA if present)"
    )
    e.add_argument("--model", help="model path or id ('world' = the built-in base model)")
    e.add_argument("--adapter", help="PEFT adapter folder (e.g. RUN_DIR/checkpoints/step-000010/adapter)")
    e.add_argument("--data", help="benchmark data folder (official layouts accepted, see docs/evaluation.md)")
    e.add_argument("--images", help="image folder (default: DATA/images or DATA/image)")
    e.add_argument("--limit", type=int, help="answer and score only the first N questions")
    e.add_argument(
        "--responses",
        help="score existing answers without a model ({id, response} JSONL or the "
        "benchmark's own answer file)",
    )
    e.add_argument("--output", help="folder for per-item JSONL and the summary (default: eval/<benchmark>)")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser(
        "report",
        parents=[common],
        help="an HTML report of run folders: curves, time per stage, negative images, evaluations",
    )
    r.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="run folders (or folders above them, e.g. an experiment's); several are overlaid",
    )
    r.add_argument(
        "-o", "--output", help="the HTML file (default: RUN_DIR/report.html, ./report.html for several)"
    )
    r.add_argument(
        "--eval",
        action="append",
        metavar="PATH",
        help="an `ovip eval` output folder or summary.json to show too (repeatable)",
    )
    r.add_argument("--gallery", type=int, default=24, help="random experiences shown per run")
    r.add_argument("--worst", type=int, default=12, help="lowest-scored chosen answers shown per run")
    r.add_argument("--seed", type=int, default=0, help="seed of the random sample")
    r.set_defaults(func=cmd_report)

    a = sub.add_parser(
        "analyze",
        parents=[common],
        help="the paper's analyses of a run: a table (JSON + Markdown) and a figure (PNG)",
        description="dynamics: duplicate rate and distinct responses over training (Fig. 10); negatives: do "
        "the negative images contradict the chosen answer (Table 1, exact on the world); mass-shift: "
        "probability mass per judge-score bin before vs after training (Fig. 5, loads the model).",
    )
    a.add_argument("analysis", choices=["dynamics", "negatives", "mass-shift"])
    a.add_argument("run", metavar="RUN_DIR", help="a training run folder")
    a.add_argument("-o", "--output", help="folder for the files (default: RUN_DIR/analysis)")
    a.add_argument("--windows", type=int, default=10, help="dynamics: number of step windows")
    a.add_argument("--prompts", type=int, default=64, help="mass-shift: preference prompts")
    a.add_argument(
        "--k", type=int, default=16, help="mass-shift: answers sampled per prompt from the base model"
    )
    a.add_argument("--seed", type=int, default=0, help="mass-shift: sampling seed")
    a.add_argument("--device", help="mass-shift: model device (default: the run's model.device)")
    a.set_defaults(func=cmd_analyze)

    xp = sub.add_parser(
        "export",
        parents=[common],
        help="a trained adapter as a folder lmms-eval, VLMEvalKit and vLLM load (merged, or PEFT + processor)",
        description="Write a run's newest adapter (or a PEFT adapter folder) with its base's processor: merged "
        "into the base weights (--merge: a plain transformers folder) or as a PEFT adapter naming its base. "
        "See docs/export.md.",
    )
    xp.add_argument(
        "source",
        metavar="RUN_DIR|ADAPTER",
        help="a run folder (its newest checkpoint), a checkpoint folder, or a PEFT adapter folder",
    )
    xp.add_argument("-o", "--output", required=True, metavar="FOLDER", help="the folder to write")
    xp.add_argument(
        "--merge",
        action="store_true",
        help="merge the adapter into the base weights (PEFT merge_and_unload) and save the whole model",
    )
    xp.add_argument(
        "--model",
        help="the base model path or hub id (default: the run's model.path, else the adapter's "
        "base_model_name_or_path; 'world' = the built-in base model)",
    )
    xp.add_argument(
        "--dtype",
        help="float32 | bfloat16 | float16 (default: the run's model.dtype; float32 for an adapter)",
    )
    xp.add_argument(
        "--device", default="cpu", help="where the model is loaded and merged (cpu | cuda | cuda:N)"
    )
    xp.add_argument(
        "--overwrite", action="store_true", help="replace FOLDER when it holds an earlier `ovip export`"
    )
    xp.set_defaults(func=cmd_export)

    w = sub.add_parser("world", parents=[common], help="the built-in synthetic world")
    w.add_argument(
        "action", choices=["build", "pretrain"], help="build: write the splits; pretrain: the base VLM"
    )
    w.add_argument("--config", help="YAML recipe (world.* settings)")
    w.set_defaults(func=cmd_world)

    s = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the judge/describer (chat completions), the images (OpenAI Images API) or the policy "
        "(chat completions with runtime LoRA adapters, as vLLM)",
    )
    s.add_argument("service", choices=["judge", "images", "policy"])
    s.add_argument(
        "--model",
        default="world",
        help="judge: 'world' (rule-based judge + describer) or a local HF chat model path; images: "
        "'world' (the renderer) or a diffusers model path or id; policy: 'world' (the recipe's base model) "
        "or an image-text-to-text model path or id",
    )
    s.add_argument("--served-model-name", help="the model name clients must send (default: --model)")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; any other than loopback requires $OVIP_API_KEY (clients send it)",
    )
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--device", help="HF / diffusers model device (default cuda; policy: the recipe's model.device)"
    )
    s.add_argument(
        "--dtype", help="HF / diffusers model dtype (default bfloat16; policy: the recipe's model.dtype)"
    )
    s.add_argument(
        "--max-batch",
        type=int,
        help="images: most prompts drawn in one pipeline call (default 4); policy: most rows (prompts x n) "
        "in one generate call (default 256)",
    )
    s.add_argument(
        "--batch-wait",
        type=float,
        default=0.01,
        help="images, policy: seconds to wait for more requests before a pipeline or generate call",
    )
    s.add_argument(
        "--adapter-root",
        help="policy: the folder LoRA adapters may be loaded from (/v1/load_lora_adapter); without it every "
        "load is refused",
    )
    s.add_argument("--max-loras", type=int, default=4, help="policy: most adapters loaded at once")
    s.add_argument("--max-n", type=int, default=64, help="policy: largest n (samples per request)")
    s.add_argument("--max-tokens", type=int, default=2048, help="policy: largest max_tokens of a request")
    s.add_argument(
        "--max-body-bytes",
        type=int,
        help="larger request bodies get 413 (default 1000000; policy: 8000000, for an image)",
    )
    s.add_argument("--max-seconds", type=float, default=600.0, help="longer requests get 504")
    s.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a request head may take from its first byte; then the connection is closed",
    )
    s.add_argument(
        "--body-timeout", type=float, default=30.0, help="seconds a body may take after its head; then 408"
    )
    s.add_argument(
        "--max-connections",
        type=int,
        default=1024,
        help="open connections at once; a new one closes the one that waited longest for a request head",
    )
    s.add_argument(
        "--max-prompt-chars",
        type=int,
        default=100_000,
        help="judge: longer prompts (all messages' text) get 400",
    )
    s.add_argument(
        "--config",
        help="YAML recipe (world.* settings for --model world; policy: model.device, model.dtype, "
        "model.attn_implementation)",
    )
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("data", parents=[common], help="data tools")
    d.add_argument(
        "action", choices=["check"], help="check: validate every record, report each bad one by id"
    )
    d.add_argument("file")
    d.add_argument("--format", default="auto", help="auto | jsonl | sharegpt | rlaif | trl")
    d.add_argument("--model", help="processor to check prompt lengths with")
    d.add_argument(
        "--max-length",
        type=int,
        help="longest prompt + reference answer in tokens, image tokens included (needs --model)",
    )
    d.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PIXELS,
        help=f"largest image, width x height, read from its header (default {MAX_PIXELS:,}, as "
        "train.max_image_pixels)",
    )
    d.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = p.parse_known_args(argv)
    args.argv = argv
    if extra and args.command in (
        "data",
        "report",
        "analyze",
        "export",
    ):  # the other commands take dotted config overrides
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        logs.setup(args.log_level)
    except ValueError as e:
        p.error(f"--log-level: {e}")
    try:
        return args.func(args, extra)
    except ConfigError as e:
        print(f"ovip: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"ovip: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
