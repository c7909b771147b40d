"""Stage timers with the paper's names (Appendix D, Fig. 12); each timer's name is also its metric `time/<name>`."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

STAGES = ("sampling", "scoring", "description", "negative_image", "forward", "post_processing")


class StageTimers:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        """Seconds spent per stage since the last call (then reset)."""
        out = {f"time/{s}": round(self.seconds.get(s, 0.0), 4) for s in STAGES}
        self.seconds.clear()
        return out
