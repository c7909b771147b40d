"""`ovip train`: build the parts from a Config and run the online loop, or resume a run folder."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import yaml

from ovip.config import Config, to_dict
from ovip.train.loop import OnlineTrainer
from ovip.train.setup import (
    build_describer,
    build_judge,
    build_policy,
    build_synthesizer,
    check_setup,
    load_training_examples,
    model_path,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_trainer(cfg: Config) -> OnlineTrainer:
    check_setup(cfg)
    examples = load_training_examples(cfg)
    model_path(cfg)  # builds the world's base model on first use; it draws from the RNG, so seed after it
    seed_everything(cfg.train.seed)  # LoRA initialisation is drawn from the torch RNG
    policy = build_policy(cfg)
    return OnlineTrainer(cfg, policy, examples, build_judge(cfg), build_describer(cfg),
                         build_synthesizer(cfg, examples), Path(cfg.train.output_dir))


def train(cfg: Config, resume: bool = False) -> dict:
    run_dir = Path(cfg.train.output_dir)
    if resume:
        saved = run_dir / "config.yaml"
        if not saved.exists():
            raise FileNotFoundError(f"{saved} not found: is {run_dir} an ovip run folder?")
        from ovip.config import from_dict

        cfg = from_dict(yaml.safe_load(saved.read_text()))
        cfg.train.output_dir = str(run_dir)
    trainer = make_trainer(cfg)
    if resume:
        if not trainer.resume():
            raise FileNotFoundError(f"no checkpoint in {run_dir}/checkpoints to resume from")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("metrics.jsonl", "experiences.jsonl"):
            (run_dir / stale).unlink(missing_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return trainer.run()
