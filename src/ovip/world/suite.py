"""The world's evaluation suite as the quickstart and `ovip experiment` run it: a policy (or the oracle) on
every evaluation split, with the recipe's `eval` decoding."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ovip.config import EvalConfig
from ovip.config.world import EVAL_SPLITS
from ovip.records import Answer


def _image_key(image) -> str:
    return hashlib.sha1(image.convert("RGB").tobytes()).hexdigest()


def oracle_generate_fn(split_dirs: dict[str, Path]):
    """generate_fn that answers every world question with its reference answer (the HRI reference)."""
    from ovip.data import load_examples
    from ovip.data.images import load_image

    answers = {}
    for folder in split_dirs.values():
        for e in load_examples(Path(folder) / "data.jsonl"):
            answers[(e.query, _image_key(load_image(e)))] = e.reference
    return lambda images, queries: [
        Answer(answers[(q, _image_key(im))], cut=False) for im, q in zip(images, queries, strict=True)
    ]


def evaluate_policy(policy, eval_cfg: EvalConfig, split_dirs: dict[str, Path]) -> dict:
    """`ovip.world.bench.evaluate_world` of `policy`, decoding with `eval_cfg`."""
    from ovip.eval.generate import make_generate_fn
    from ovip.world.bench import evaluate_world

    return evaluate_world(make_generate_fn(policy, eval_cfg), split_dirs, batch_size=eval_cfg.batch_size)


__all__ = ["EVAL_SPLITS", "evaluate_policy", "oracle_generate_fn"]
