"""`ovip train`: start a run in a run folder from a Config, or resume one.

A run folder holds one run. Starting a run where another one is refuses unless `overwrite` (then ovip's own
files there are deleted first: a resume of a mixed folder would continue the old run under the new config);
the refusal names the way out, `--resume` or, for a run that stopped before its first checkpoint (nothing to
resume), `--overwrite`. A folder that holds only what an attempt leaves before it saves config.yaml (its logs,
data_report.json, images/: it stopped while loading the data or the model, or at a preflight or data error)
holds no run: starting again there starts afresh, the old logs kept as train.log.1 (train-rankR.log.1).
Paths that exist locally (data, model, adapter, diffusion model) are stored absolute in config.yaml, so
`--resume` works from any directory. A resume takes the saved config; only `RESUME_OVERRIDES` may change (more
epochs, where the services are and how long to wait for them), anything else is a one-line error. Resuming a
finished run (summary.json) without more epochs changes nothing.

Under `accelerate launch` every rank runs these functions: each looks at the folder before rank 0 changes it,
rank 0 builds the world and writes the run files, and each rank logs to its own train log (`log_name`).
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path

import numpy as np
import torch
import yaml

from ovip.config import Config, apply_overrides, from_dict, read_yaml, to_dict
from ovip.errors import ConfigError
from ovip.feedback.registry import build_describer, build_judge
from ovip.logs import log_file
from ovip.negatives.registry import build_synthesizer
from ovip.train import checkpoint
from ovip.train.distributed import Ranks
from ovip.train.loop import OnlineTrainer, log_name
from ovip.train.methods import apply_method, objective_of
from ovip.train.preflight import check_synthesizer, preflight
from ovip.train.setup import build_policy, check_ranks, check_setup, load_training_examples
from ovip.world.resolve import prepare

RESUME_OVERRIDES = (
    "train.epochs", "train.report_to", "train.max_failure_rate", "train.failure_window", "train.collective_timeout",
    "judge.base_url", "judge.api_key_env", "judge.timeout", "judge.max_retries", "judge.max_concurrency",
    "describer.base_url", "describer.api_key_env", "describer.timeout", "describer.max_retries",
    "describer.max_concurrency",
    "negatives.base_url", "negatives.api_key_env", "negatives.timeout", "negatives.max_retries",
    "negatives.max_concurrency",
    "rollout.base_url", "rollout.api_key_env", "rollout.timeout", "rollout.max_retries", "rollout.max_concurrency",
)  # fmt: skip
# Everything ovip writes into a run folder; `overwrite` deletes these and nothing else.
RUN_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "experiences.jsonl",
    "summary.json",
    "data_report.json",
    "quickstart.json",
    "quickstart-config.yaml",
    "train.log",
    "report.html",
)
RUN_FOLDERS = ("checkpoints", "images", "tensorboard", "wandb", "rollout")
# What an attempt writes before config.yaml: its logs (`log_files`), then the data check's report, then the
# negative image store.
ATTEMPT_FILES = ("data_report.json", "images")


log = logging.getLogger(__name__)


class RunExists(ValueError):
    """The run folder already holds a run."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def start_ranks(cfg: Config) -> Ranks:
    return Ranks.start(cfg.model.device, cfg.train.collective_timeout)


def make_trainer(cfg: Config, ranks: Ranks | None = None) -> OnlineTrainer:
    ranks = ranks or start_ranks(cfg)
    apply_method(cfg)  # the method's loss and negatives, written into cfg (and so into config.yaml)
    check_setup(cfg)
    check_ranks(cfg, ranks.world)
    ranks.local_batch(
        cfg.train.batch_size
    )  # a global batch that does not split over the ranks is refused now
    preflight(cfg)  # every remote service answers (every rank's clients) before any data or model loads
    run_dir = Path(cfg.train.output_dir)
    with (
        ranks.main_first()
    ):  # rank 0 builds the world's splits and base model (on first use), the others read them
        cfg = prepare(cfg)  # the world's data and model as paths (config.yaml keeps `world`)
    examples, report = load_training_examples(cfg)
    skipped = len(report.bad_indices)
    run_dir.mkdir(parents=True, exist_ok=True)
    if ranks.main:
        (run_dir / "data_report.json").write_text(
            json.dumps(
                {
                    "data": cfg.train.data,
                    "records": report.n_examples,
                    "skipped": skipped,
                    "used": len(examples),
                    "max_image_pixels": report.max_pixels,
                    "skipped_records": report.records(),
                },
                indent=2,
            )
        )
    if skipped and ranks.main:
        log.warning(
            "skipped %d of %d records (train.skip_invalid); the list is in %s\n%s",
            skipped,
            report.n_examples,
            run_dir / "data_report.json",
            report.format(limit=10),
        )
    synthesizer = None  # a method without negative images draws none: no image model is loaded
    if objective_of(cfg).negatives:
        synthesizer = build_synthesizer(cfg, examples)
        check_synthesizer(synthesizer)  # an in-process diffusion model loads now, or the run does not start
    seed_everything(
        cfg.train.seed
    )  # LoRA initialisation is drawn from the torch RNG (the same on every rank)
    policy = build_policy(cfg, ranks.policy_device(cfg.model.device))
    trainer = OnlineTrainer(
        cfg, policy, examples, build_judge(cfg), build_describer(cfg), synthesizer, run_dir, ranks=ranks
    )
    trainer.data_skipped = skipped
    return trainer


def train(cfg: Config, overwrite: bool = False) -> dict:
    """Start the run of `cfg` in `cfg.train.output_dir` and return its summary."""
    cfg = absolute_paths(cfg)
    ranks = start_ranks(cfg)
    run_dir = Path(cfg.train.output_dir)
    held = holds_run(run_dir)
    attempt = not held and attempt_leftovers(run_dir)
    ranks.barrier()  # every rank has looked before rank 0 deletes anything
    if held:
        if not overwrite:
            if checkpoint.latest(run_dir) is None and not (run_dir / "summary.json").exists():
                raise RunExists(
                    f"{run_dir} holds a run that stopped before its first checkpoint, so there is nothing to "
                    "resume: start it over there with --overwrite (deletes that run's files)"
                )
            raise RunExists(
                f"{run_dir} already holds a run: continue it with `ovip train --resume {run_dir}`, "
                "or start over there with --overwrite"
            )
        if ranks.main:
            clear_run(run_dir)
    elif attempt and ranks.main:
        restart_attempt(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ranks.barrier()
    with log_file(run_dir / log_name(ranks.rank)) as handler:
        if attempt and ranks.main:  # a note in the new log only: the console shows this attempt's own errors
            note = (
                f"{run_dir} held an earlier attempt that stopped before it saved config.yaml "
                f"({', '.join(attempt)}): starting afresh there, its logs renamed *.log.1"
            )
            handler.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, note, None, None))
        trainer = make_trainer(cfg, ranks)
        if ranks.main:
            (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return trainer.run()


def resume(run_dir: str | Path, overrides: list[str] | None = None) -> dict:
    """Continue the run in `run_dir` from its newest complete checkpoint, with `RESUME_OVERRIDES` applied."""
    run_dir = Path(run_dir).resolve()
    saved_file = run_dir / "config.yaml"
    if not saved_file.exists():
        if attempt_leftovers(run_dir):
            raise FileNotFoundError(
                f"{run_dir} holds an attempt that stopped before it saved config.yaml (while loading the data or "
                "the model), so there is nothing to resume: start it again with the same `ovip train` command, "
                "which starts afresh there"
            )
        raise FileNotFoundError(f"{saved_file} not found: is {run_dir} an ovip run folder?")
    saved = read_yaml(saved_file)
    cfg = resume_config(saved, overrides or [])
    cfg.train.output_dir = str(run_dir)
    summary = run_dir / "summary.json"
    more = cfg.train.epochs > from_dict(saved).train.epochs
    if summary.exists() and not more:
        log.warning("%s is a finished run; nothing to resume (--train.epochs N continues it)", run_dir)
        return json.loads(summary.read_text())
    if checkpoint.latest(run_dir) is None:  # said before any model loads
        raise FileNotFoundError(
            f"no complete checkpoint in {run_dir / 'checkpoints'}: the run stopped before its first "
            f"checkpoint, so there is nothing to resume; start it over with `ovip train --config {saved_file} "
            "--overwrite` (or the command that started it, plus --overwrite)"
        )
    ranks = start_ranks(cfg)
    with log_file(run_dir / log_name(ranks.rank)):
        log.info("resuming %s", run_dir)
        trainer = make_trainer(cfg, ranks)  # its barriers: every rank has read config.yaml and summary.json
        if not trainer.resume():
            raise FileNotFoundError(f"no complete checkpoint in {run_dir / 'checkpoints'} to resume from")
        if overrides and ranks.main:
            (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        if ranks.main:
            summary.unlink(missing_ok=True)  # the run is not finished until it writes its summary again
        return trainer.run()


def resume_config(saved: dict, overrides: list[str]) -> Config:
    """The saved config with `overrides` (`--section.key VALUE` tokens) applied; keys outside
    `RESUME_OVERRIDES`, or fewer epochs, are a ConfigError."""
    changed = sorted(_dotted(apply_overrides({}, overrides)))
    refused = [key for key in changed if key not in RESUME_OVERRIDES]
    if refused:
        raise ConfigError(
            f"--resume continues the run with its saved config; {', '.join('--' + k for k in refused)} "
            f"cannot change (allowed: {', '.join(RESUME_OVERRIDES)})"
        )
    cfg = from_dict(apply_overrides(saved, overrides))
    before = from_dict(saved).train.epochs
    if cfg.train.epochs < before:
        raise ConfigError(f"train.epochs: a resumed run can only get more epochs (it has {before})")
    return cfg


def holds_run(run_dir: Path) -> bool:
    return any(
        (run_dir / name).exists()
        for name in ("config.yaml", "checkpoints", "metrics.jsonl", "experiences.jsonl", "summary.json")
    )


def log_files(run_dir: Path) -> list[Path]:
    """The run logs of every rank (`log_name`) in `run_dir`, and their rotated copies."""
    return sorted(
        p for p in run_dir.glob("train*.log*") if re.fullmatch(r"train(-rank\d+)?\.log(\.1)?", p.name)
    )


def attempt_leftovers(run_dir: Path) -> list[str]:
    """The names of what an attempt that never saved config.yaml left in `run_dir` (none: a fresh folder)."""
    names = [p.name for p in log_files(run_dir) if not p.name.endswith(".1")]
    return names + [name for name in ATTEMPT_FILES if (run_dir / name).exists()]


def restart_attempt(run_dir: Path) -> None:
    """Make way for a new run where an attempt stopped before config.yaml: each log becomes LOG.1 (replacing
    an older one), the data report and the image store go."""
    import shutil

    for path in log_files(run_dir):
        if not path.name.endswith(".1"):
            path.replace(path.with_name(path.name + ".1"))
    (run_dir / "data_report.json").unlink(missing_ok=True)
    shutil.rmtree(run_dir / "images", ignore_errors=True)


def clear_run(run_dir: Path) -> None:
    import shutil

    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for path in log_files(run_dir):  # the other ranks' logs, and rotated ones
        path.unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(run_dir / name, ignore_errors=True)


def absolute_paths(cfg: Config) -> Config:
    """`cfg` with the run folder and every local path made absolute (hub ids and 'world' stay as they are)."""
    cfg = from_dict(to_dict(cfg))

    def local(value):
        return str(Path(value).resolve()) if value and value != "world" and Path(value).exists() else value

    cfg.train.output_dir = str(Path(cfg.train.output_dir).resolve())
    cfg.train.data = local(cfg.train.data)
    cfg.model.path, cfg.model.adapter = local(cfg.model.path), local(cfg.model.adapter)
    cfg.negatives.model = local(cfg.negatives.model)
    return cfg


def _dotted(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            keys += _dotted(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys
