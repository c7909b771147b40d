"""train.report_to: TensorBoard event files and an offline Weights & Biases run, written without a network."""

import time

import pytest

from ovip.train.trackers import Trackers

METRICS = [
    {"step": 1, "loss/text": 0.69, "rewards/margins": 0.25, "grad_norm": None, "time/wall": 1e9},
    {"step": 2, "loss/text": 0.5, "rewards/margins": 0.5, "grad_norm": 1.5, "time/wall": 1e9 + 1},
]


def test_tensorboard_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    trackers = Trackers(["tensorboard"], tmp_path, {"train": {"lr": 1e-6}})
    for m in METRICS:
        trackers.log(m, m["step"])
    trackers.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    data = events[0].read_bytes()
    assert b"rewards/margins" in data and b"loss/text" in data and b"time/wall" not in data


def test_wandb_offline_writes_its_run_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network, no account
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    trackers = Trackers(["wandb"], tmp_path / "run", {"loss": {"beta": 0.1}})
    for m in METRICS:
        trackers.log(m, m["step"])
    trackers.close()
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # wandb-core (a separate process) writes the transaction log; on a loaded machine its last records can land
    # a moment after `finish()` returns, so wait for them (up to 60 s) instead of reading once.
    wanted = (b"rewards/margins", b"loss/text", b"grad_norm")
    deadline = time.monotonic() + 60
    while True:
        data = b"".join(f.read_bytes() for f in runs[0].glob("run-*.wandb"))
        if all(w in data for w in wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(w in data for w in wanted), data[:200]


def test_unknown_tracker(tmp_path):
    with pytest.raises(ValueError, match="unknown tracker 'mlflow'"):
        Trackers(["mlflow"], tmp_path)
