"""Metric trackers named by `train.report_to`: TensorBoard and Weights & Biases, as TRL's `report_to`.

metrics.jsonl is always written (it is the run's record, resumed with it); trackers get a copy of each step's
metrics under the same names (`loss/*`, `rewards/*`, `time/*`, ...), at the optimizer step.

- `tensorboard`: event files in RUN_DIR/tensorboard (`tensorboard --logdir RUN_DIR/tensorboard`).
- `wandb`: a run named after the run folder in project `$WANDB_PROJECT` (default `ovip`), files under
  RUN_DIR/wandb. `WANDB_MODE=offline` writes everything locally with no network (`wandb sync` uploads it later).
"""

from __future__ import annotations

import os
from pathlib import Path

REPORT_TO = ("tensorboard", "wandb")


def _numbers(metrics: dict) -> dict[str, float]:
    skip = ("step", "time/wall")
    return {
        k: float(v)
        for k, v in metrics.items()
        if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class TensorBoard:
    def __init__(self, run_dir: Path, config: dict):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "train.report_to tensorboard needs the tensorboard package: pip install 'ovip[tensorboard]'"
            ) from e
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, metrics: dict, step: int) -> None:
        for key, value in _numbers(metrics).items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandB:
    def __init__(self, run_dir: Path, config: dict):
        try:
            import wandb
        except ImportError as e:
            raise ImportError(
                "train.report_to wandb needs the wandb package: pip install 'ovip[wandb]'"
            ) from e
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "ovip"),
            name=run_dir.name,
            dir=str(run_dir),
            config=config,
        )

    def log(self, metrics: dict, step: int) -> None:
        self.run.log(_numbers(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The trackers of `names` (each of REPORT_TO at most once); `log` and `close` go to each of them."""

    def __init__(self, names: list[str], run_dir: str | Path, config: dict | None = None):
        run_dir = Path(run_dir)
        kinds = {"tensorboard": TensorBoard, "wandb": WandB}
        self.trackers = []
        for name in dict.fromkeys(names):
            if name not in kinds:
                raise ValueError(
                    f"train.report_to: unknown tracker {name!r}; choose from {', '.join(REPORT_TO)}"
                )
            run_dir.mkdir(parents=True, exist_ok=True)
            self.trackers.append(kinds[name](run_dir, config or {}))

    def log(self, metrics: dict, step: int) -> None:
        for tracker in self.trackers:
            tracker.log(metrics, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []
