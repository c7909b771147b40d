"""A run's JSONL records: one metrics line per optimizer step (metrics.jsonl) and every experience
(experiences.jsonl), written by rank 0 for all ranks.

A metrics line describes the window since the previous line: the loss terms of the update, the counters'
rates over the window (`ovip.train.counters`), the stage times (`time/*`) and, with several ranks, the wait
for the slowest one. Non-finite values are written as null. A checkpoint records how long each file was
(`sizes`), and a resume cuts off what was written after it (`truncate`): the resumed run writes it again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ovip.records import Experience, experience_row
from ovip.train.counters import Counters

FILES = ("metrics.jsonl", "experiences.jsonl")


class RunRecords:
    def __init__(self, run_dir: Path, ranks, trackers):
        self.run_dir, self.ranks, self.trackers = Path(run_dir), ranks, trackers

    def window(self, sums, buffered: int, now: Counters, since: Counters, times: dict, wait: float) -> dict:
        """The metrics of the window since the previous line, over all ranks: the loss terms' means (equal
        shares), the buffer size, the counters summed, the stage times averaged, and the wait for the slowest
        rank (a collective with several ranks)."""
        if self.ranks.world == 1:
            return {"buffer/size": buffered, **sums, **now.metrics(since=since), **times}
        everyone = self.ranks.gather((sums, buffered, now, since, times, wait))
        mean = lambda dicts: {k: sum(d[k] for d in dicts) / len(dicts) for k in dicts[0]}  # noqa: E731
        waits = [e[5] for e in everyone]
        total, before = Counters.combine([e[2] for e in everyone]), Counters.combine([e[3] for e in everyone])
        return {
            "buffer/size": sum(e[1] for e in everyone),
            **mean([e[0] for e in everyone]),
            **total.metrics(since=before),
            **mean([e[4] for e in everyone]),
            "time/sync_wait": round(sum(waits) / len(waits), 4),
            "time/sync_wait_max": round(max(waits), 4),
        }

    def write_metrics(self, metrics: dict, step: int) -> dict:
        """Append one metrics line (non-finite floats as null) and send it to the trackers; returns the line."""
        metrics = {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()}
        if self.ranks.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            self.trackers.log(metrics, step)
        return metrics

    def write_experiences(self, experiences: list[Experience]) -> None:
        """Rank 0 appends every rank's experiences of a batch, rank by rank (a collective with N ranks)."""
        rows = [experience_row(e) for e in experiences]
        if self.ranks.world > 1:
            rows = [row for part in self.ranks.gather(rows) for row in part]
        if rows and self.ranks.main:
            with open(self.run_dir / "experiences.jsonl", "a") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")

    def write_summary(self, trainer, skipped: int) -> tuple[dict, Counters]:
        """summary.json of a finished run (rank 0), over all ranks (a collective): steps, prompts, what is left
        in the buffers, the counters' totals and the last losses. Returns it and the combined counters."""
        everyone = self.ranks.gather((len(trainer.buffer), trainer.counters, trainer.sync_total))
        counters = Counters.combine([e[1] for e in everyone])
        summary = {
            "step": trainer.step,
            "prompts": trainer.cursor,
            "buffer_left": sum(e[0] for e in everyone),
            "data/skipped": skipped,
            **counters.metrics(),
            **trainer.last_losses,
        }
        if self.ranks.world > 1:
            summary |= {
                "ranks": self.ranks.world,
                "buffer_left_per_rank": [e[0] for e in everyone],
                "time/sync_wait_per_rank": [round(e[2], 3) for e in everyone],
            }
        if self.ranks.main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary, counters

    def sizes(self) -> dict[str, int]:
        return {
            name: (self.run_dir / name).stat().st_size if (self.run_dir / name).exists() else 0
            for name in FILES
        }

    def truncate(self, sizes: dict[str, int], checkpoint: str) -> None:
        """Drop the lines written after a checkpoint (rank 0 owns the files). A file shorter than the checkpoint
        says is not this run's (truncate() would pad it with NUL bytes): a ValueError."""
        for name, size in sizes.items() if self.ranks.main else ():
            path = self.run_dir / name
            have = path.stat().st_size if path.exists() else 0
            if have < size:
                raise ValueError(
                    f"{path} has {have} bytes, fewer than the {size} that checkpoint {checkpoint} "
                    "recorded: the logs and checkpoints of this folder are not from one run"
                )
            if path.exists():
                with open(path, "r+b") as f:
                    f.truncate(size)
