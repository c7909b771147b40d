"""Stage timers with the paper's names (Appendix D, Fig. 12); each timer's name is also its metric `time/<name>`.

With `train.pipeline: overlapped` the service stages (scoring, description, negative_image) run in a worker
thread while the policy samples, so stage times can add up to more than the wall time; `time/service_wait`
is the time the policy's thread spent waiting for them (and for a policy server's samples). `time/weight_sync`
is the time spent pushing the adapter to policy servers (`rollout.engine server`).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

STAGES = (
    "sampling",
    "scoring",
    "description",
    "negative_image",
    "forward",
    "post_processing",
    "service_wait",
    "weight_sync",
)


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

    def add(self, stage: str, seconds: float) -> None:
        """Time measured elsewhere (a service stage run by a worker thread)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        self.seconds[stage] += seconds

    def metrics(self) -> dict[str, float]:
        """Seconds spent per stage since the last call (then reset)."""
        out = {f"time/{s}": round(self.seconds.get(s, 0.0), 4) for s in STAGES}
        self.seconds.clear()
        return out
