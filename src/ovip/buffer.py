"""Experience buffer B (Algorithm 1, Appendix F).

Experiences accumulate until |B| >= N; then N are drawn at random for one update and the rest stay for later
steps, so training proceeds smoothly under variable pair yields. The buffer is saved with every checkpoint.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ovip.records import Experience, experience_from_row, experience_row


class ExperienceBuffer:
    def __init__(self, seed: int = 0):
        self.items: list[Experience] = []
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, experiences: list[Experience]) -> None:
        self.items.extend(experiences)

    def sample(self, n: int) -> list[Experience]:
        """Remove and return n experiences drawn uniformly without replacement."""
        if n > len(self.items):
            raise ValueError(f"asked for {n} experiences, buffer holds {len(self.items)}")
        picked = sorted(self.rng.sample(range(len(self.items)), n))
        chosen = [self.items[i] for i in picked]
        keep = set(picked)
        self.items = [e for i, e in enumerate(self.items) if i not in keep]
        return chosen

    def state_dict(self) -> dict:
        return {"items": [experience_row(e) for e in self.items], "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.items = [experience_from_row(e) for e in state["items"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.state_dict()))

    def load(self, path: Path) -> None:
        self.load_state_dict(json.loads(path.read_text()))
