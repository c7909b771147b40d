"""The learning-rate schedule (B.2: cosine over one epoch, optional warmup) and the stage timers (Appendix D)."""

import math
import time

import pytest

from ovip.config import Config, TrainConfig
from ovip.train.schedule import learning_rate
from ovip.train.timers import STAGES, StageTimers


def test_cosine_schedule_by_hand():
    """lr 1e-3, no warmup: progress 0 -> 1e-3, 0.5 -> 0.5e-3, 1 -> 0; with 10% warmup: 0.05 -> half the peak,
    0.1 -> the peak, then cosine over the remaining 90%: 0.55 -> 0.5e-3."""
    cfg = Config(train=TrainConfig(lr=1e-3))
    assert learning_rate(cfg, 0.0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 0.5) == pytest.approx(0.5e-3)
    assert learning_rate(cfg, 1.0) == pytest.approx(0.0, abs=1e-15)
    assert learning_rate(cfg, 0.25) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 4)))
    warm = Config(train=TrainConfig(lr=1e-3, warmup_ratio=0.1))
    assert learning_rate(warm, 0.05) == pytest.approx(0.5e-3)
    assert learning_rate(warm, 0.1) == pytest.approx(1e-3)
    assert learning_rate(warm, 0.55) == pytest.approx(0.5e-3)


def test_timers_use_the_papers_stage_names_and_reset_after_each_report():
    timers = StageTimers()
    with timers("sampling"):
        time.sleep(0.02)
    with timers("sampling"):
        time.sleep(0.01)
    with timers("forward"):
        pass
    first = timers.metrics()
    assert set(first) == {f"time/{s}" for s in STAGES}
    assert first["time/sampling"] >= 0.03 and first["time/scoring"] == 0.0
    assert timers.metrics()["time/sampling"] == 0.0  # each line reports its own window
    with pytest.raises(ValueError, match="unknown stage"):
        with timers("rollout"):
            pass
