"""When the buffer is trained on, and the learning rate at each update.

    Online     whenever |B| >= N (Appendix F): OViP, online DPO, GRPO, SFT
    Phases(1)  after the whole data, all of it sampled by the initial model (Table 4's offline setting)
    Phases(R)  after each 1/R of the data, sampled by the current model (Fig. 4's iterative scheme)

The learning rate is a cosine over the run (B.2). An online run's step count depends on its pair yield and is
unknown in advance, so the schedule follows the data cursor; within an offline or iterative phase it follows
the phase's updates instead, so an offline phase still runs its cosine from the peak to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ovip.config import Config


def learning_rate(cfg: Config, progress: float) -> float:
    """Linear warmup then cosine decay to 0 over the run (B.2: cosine schedule); `progress` in [0, 1]."""
    warm = cfg.train.warmup_ratio
    if warm and progress < warm:
        return cfg.train.lr * progress / warm
    frac = (progress - warm) / max(1e-12, 1 - warm)
    return cfg.train.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


class Online:
    """Train whenever the buffer holds a batch (Appendix F); the learning rate follows the data cursor."""

    def __init__(self, total: int, rounds: int | None = None):
        self.total = total

    def may_update(self, cursor: int, held: Callable[[], int], local_batch: int) -> bool:
        return True

    def end_phase(self, cursor: int) -> None:
        pass

    def progress(self, cursor: int) -> float:
        return cursor / max(1, self.total)

    def state(self) -> dict:
        return {}

    def load(self, state: dict) -> None:
        pass


class Phases:
    """Sample phase by phase without training, then drain the buffer: `rounds` phases of the data (None: one,
    the whole data). A phase that starts draining makes min_r |B_r| // (N / world) updates (`held()` is one
    collective over the ranks), and its learning rate runs the cosine over them."""

    def __init__(self, total: int, rounds: int | None = None):
        self.total, self.rounds = total, rounds
        self.start, self.end = 0, self._end_of(0)
        self.draining: list[int] | None = None  # (cursor at the phase's start, its updates, updates made)

    def _end_of(self, cursor: int) -> int:
        if self.rounds is None:
            return self.total
        size = max(1, math.ceil(self.total / self.rounds))
        return min(self.total, (cursor // size + 1) * size)

    def may_update(self, cursor: int, held: Callable[[], int], local_batch: int) -> bool:
        if cursor < self.end:
            return False
        if self.draining is None:
            self.draining = [self.start, held() // local_batch, 0]
        return True

    def end_phase(self, cursor: int) -> None:
        if cursor >= self.end:
            self.draining = None
            self.start, self.end = cursor, self._end_of(cursor)

    def progress(self, cursor: int) -> float:
        """The phase's start plus the share of its updates made, over the prompts (the data cursor between
        phases); each call is one update."""
        total = max(1, self.total)
        if self.draining is None:
            return cursor / total
        start, n, done = self.draining
        self.draining[2] += 1
        return (start + (self.end - start) * done / max(1, n)) / total

    def state(self) -> dict:
        return {"phase_start": self.start, "phase_end": self.end, "phase": self.draining}

    def load(self, state: dict) -> None:
        self.start = state.get("phase_start", 0)
        self.end = state.get("phase_end", self.end)
        self.draining = state.get("phase")
