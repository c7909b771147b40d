"""Data parallelism on the world: prompts/s of `ovip train` on 1 process and on 2 ranks (accelerate, DDP over
gloo), measured in alternating pairs in one run, and each rank's idle time waiting for the slowest one.

    python benchmarks/bench_distributed.py                   # world recipe, 512 prompts, 2 pairs of runs

Both launch the real command, as a user would: `python -m ovip.cli train` and `accelerate launch --config_file
configs/accelerate/ddp.yaml --num_processes 2 -m ovip.cli train`, each process on one torch thread
(OMP_NUM_THREADS=1), so the 2-rank run uses twice the threads: the ratio is what a second device buys. The time
is the training loop's, from its first log line to its last progress line in train.log (model loading and
process-group start-up excluded). The idle time is `time/sync_wait`: seconds a rank spent in the update
agreement waiting for the other to hold its share of the batch (Appendix D: "repeated sampling by one subprocess
may block others due to synchronization constraints"). The 1-minute load average before each run is printed:
on a shared machine the ratio means little when the load exceeds the free cores. Numbers go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def loop_seconds(log: Path) -> float:
    """Seconds from the loop's first line ("run folder ...") to its last progress line, from train.log."""

    def when(line: str) -> float:
        return datetime.strptime(STAMP.match(line).group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()

    lines = log.read_text().splitlines()
    begin = next(x for x in lines if "ovip.train.loop: run folder" in x)
    end = [x for x in lines if "ovip.progress: ovip:" in x][-1]
    return when(end) - when(begin)


def run(ranks: int, args, out: Path, overrides: list[str]) -> dict:
    from ovip.train.distributed import free_port, launch_command

    folder = out / f"ranks-{ranks}-{time.monotonic_ns()}"
    train = [
        "train",
        "--config",
        args.config,
        "--train.output_dir",
        str(folder),
        "--train.max_examples",
        str(args.prompts),
        "--train.save_every",
        "0",
        *overrides,
    ]
    cmd = (
        launch_command(ranks, train, port=free_port())
        if ranks > 1
        else [sys.executable, "-m", "ovip.cli", *train]
    )
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((folder / "summary.json").read_text())
    seconds = loop_seconds(folder / "train.log")
    return {
        "ranks": ranks,
        "seconds": seconds,
        "prompts_per_s": summary["prompts"] / seconds,
        "load": load,
        "steps": summary["step"],
        "experiences": summary["experiences/total"],
        "idle": summary.get("time/sync_wait_per_rank", [0.0]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=512, help="prompts per run (train.max_examples)")
    p.add_argument("--pairs", type=int, default=2, help="alternating (1 process, 2 ranks) pairs of runs")
    p.add_argument("--config", default="world")
    args, overrides = p.parse_known_args()

    from ovip.config import load
    from ovip.world.resolve import model_path

    cfg = load(args.config, overrides)
    model_path(cfg)  # build and cache the world's base model once, outside the measured runs
    out = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    print(
        f"{args.config} recipe, {args.prompts} prompts x k={cfg.rollout.k}, {cfg.rollout.prompts_per_batch} "
        f"prompts per batch, global batch {cfg.train.batch_size}; 1 torch thread per process; {os.cpu_count()} "
        f"CPUs; runs in {out}",
        flush=True,
    )
    runs = []
    for _ in range(args.pairs):
        for ranks in (1, 2):
            runs.append(run(ranks, args, out, overrides))
            r = runs[-1]
            print(
                f"  {r['ranks']} rank(s): {r['seconds']:.1f} s, {r['prompts_per_s']:.2f} prompts/s, load "
                f"{r['load']:.1f}",
                flush=True,
            )
    print(
        f"\n{'ranks':>5}{'threads':>8}{'seconds':>9}{'prompts/s':>10}{'steps':>6}{'exps':>6}{'load':>6}"
        f"   idle waiting for the slowest rank, s per rank (share of the loop)"
    )
    for r in runs:
        idle = ", ".join(f"{s:.1f} ({s / r['seconds']:.0%})" for s in r["idle"]) if r["ranks"] > 1 else "-"
        print(
            f"{r['ranks']:>5}{r['ranks']:>8}{r['seconds']:>9.1f}{r['prompts_per_s']:>10.2f}{r['steps']:>6}"
            f"{r['experiences']:>6}{r['load']:>6.1f}   {idle}"
        )
    ratios = [b["prompts_per_s"] / a["prompts_per_s"] for a, b in zip(runs[::2], runs[1::2], strict=True)]
    print(
        f"\n2 ranks / 1 process, prompts/s, per pair: {', '.join(f'{x:.2f}' for x in ratios)} "
        f"(mean {sum(ratios) / len(ratios):.2f}; 2.0 would be perfect scaling)"
    )


if __name__ == "__main__":
    main()
