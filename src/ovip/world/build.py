"""Entry points of the built-in world: write its splits, get its base model (the CLI's `ovip world ...`).

    build_world(out_dir, cfg)        -> {split: folder}   every split as data.jsonl + images/ + split.json
    ensure_base_model(cache_dir, cfg) -> folder            pretrained tiny VLM, reused when already finished

Both are caches keyed by the config fingerprint: a folder whose `split.json` / `pretrain.json` carries the
same fingerprint is reused, anything else is rebuilt. The split writer and the pretraining are imported only
when something must be built, so a run over a built world never loads them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ovip.config.world import EVAL_SPLITS, TRAIN_SPLITS, WorldConfig
from ovip.world.cache import base_model_is_finished, split_is_current


def build_world(out_dir: str | Path, cfg: WorldConfig, splits=None) -> dict[str, Path]:
    """Write `splits` (default: all training and evaluation splits) under `out_dir`; return name -> folder."""
    out_dir = Path(out_dir)
    folders = {}
    for split in splits or (*TRAIN_SPLITS, *EVAL_SPLITS):
        size = {"pretrain": cfg.pretrain_size, "preference": cfg.preference_size}.get(
            split
        ) or cfg.eval_sizes.get(split, 0)
        folder = out_dir / split
        if not split_is_current(folder, cfg, size):
            from ovip.world.splits import write_split

            write_split(cfg, split, out_dir)
        folders[split] = folder
    (out_dir / "world.json").write_text(json.dumps(cfg.to_dict(), indent=1, default=list))
    return folders


def ensure_base_model(cache_dir: str | Path, cfg: WorldConfig, progress: bool = True) -> Path:
    """The pretrained base model for `cfg`: `cache_dir/base-<fingerprint>`, trained there if not finished."""
    folder = Path(cache_dir) / f"base-{cfg.fingerprint('model', 'pretrain')}"
    if base_model_is_finished(folder, cfg):
        return folder
    from ovip.world.pretrain import pretrain

    return pretrain(folder, cfg, progress=progress)


def main(argv=None) -> dict:
    """`python -m ovip.world.build OUT [--eval]`: splits + base model (+ its world benchmarks), as JSON.

    The numbers quoted for the default world come from this command (greedy decoding).
    """
    import argparse
    import time

    import torch

    from ovip.config import EvalConfig
    from ovip.eval.generate import make_generate_fn
    from ovip.policy.model import Policy
    from ovip.world.bench import evaluate_world
    from ovip.world.judge import WorldJudge

    ap = argparse.ArgumentParser(prog="python -m ovip.world.build", description=main.__doc__)
    ap.add_argument("out", help="folder for the splits; the base model goes to OUT/models")
    ap.add_argument(
        "--eval", action="store_true", help="also run the world benchmarks on the base model (greedy)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    cfg = WorldConfig(pretrain={"threads": args.threads})
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    folders = build_world(args.out, cfg)
    summary: dict = {"build_s": round(time.perf_counter() - t0, 1)}
    path = ensure_base_model(Path(args.out) / "models", cfg)
    summary["base_model"] = str(path)
    summary["pretrain"] = {
        k: v for k, v in json.loads((path / "pretrain.json").read_text()).items() if k != "config"
    }
    if args.eval:
        policy = Policy.from_pretrained(str(path), finetune="none")
        t1 = time.perf_counter()
        evals = {k: v for k, v in folders.items() if k not in ("pretrain", "preference")}
        generate = make_generate_fn(policy, EvalConfig(greedy=True, max_new_tokens=128))
        summary["eval"] = evaluate_world(generate, evals, WorldJudge(cfg.categories, cfg.colors))
        summary["eval_s"] = round(time.perf_counter() - t1, 1)
    print(json.dumps(summary, indent=1, default=str))
    return summary


if __name__ == "__main__":
    main()
