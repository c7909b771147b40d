"""The loop's pipelines against local HTTP services (the world's judge, describer and renderer, each reply
delayed at random so that requests complete out of order):

- concurrent (every request of a batch in flight) gives exactly the experiences and the adapter of the
  sequential loop (one request at a time);
- overlapped (batch t+1 sampled while batch t is served) gives identical runs, and a run killed with SIGKILL
  in the middle of a checkpoint, then resumed, ends with the adapter and metrics of the uninterrupted one;
- a judge that dies mid-run stops the run at the error budget with a checkpoint, which resumes once the
  judge is back;
- metrics lines describe their window; running totals are the `*_total` keys;
- `train.max_staleness` keeps more batches in flight, bounded in optimizer steps, and a run still repeats
  itself; a checkpoint saves the batches in flight up to one with a failed prompt, which a resume samples again.
"""

import json
import signal

import pytest
import torch
import yaml
from conftest import http_services, run_ovip
from faults import Fault, FaultServer
from safetensors.torch import load_file

from ovip.config import TrainConfig, from_dict
from ovip.feedback.serve import world_reply
from ovip.train import checkpoint
from ovip.train.counters import ServiceFailure
from ovip.train.pipeline import Pipeline
from ovip.train.rollout import Sampling
from ovip.train.run import resume, train
from ovip.train.timers import StageTimers

pytestmark = pytest.mark.slow  # minutes of real runs; CI runs them (only -m gpu is opt-in)


def experiences(run) -> list[dict]:
    """experiences.jsonl with image paths reduced to file names (the store is content-addressed per run)."""
    rows = [json.loads(line) for line in (run / "experiences.jsonl").read_text().splitlines()]
    for row in rows:
        row["image_path"] = row["image_path"].rsplit("/", 1)[-1]
        row["negative_image_path"] = row["negative_image_path"].rsplit("/", 1)[-1]
    return rows


def adapter(run) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.latest(run) / "adapter" / "adapter_model.safetensors"))


def metrics(run) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in lines]


def assert_same(a, b):
    assert experiences(a) == experiences(b)
    wa, wb = adapter(a), adapter(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert metrics(a) == metrics(b)


@pytest.fixture
def in_process(tiny_world, monkeypatch, one_thread):
    root, recipe, environ = tiny_world
    monkeypatch.setenv("OVIP_CACHE", environ["OVIP_CACHE"])
    return root, yaml.safe_load(recipe.read_text())


def run_with(recipe, world_services, out, pipeline, **limits):
    chat_url, images_url, chat, images = world_services
    cfg = http_services(recipe, chat_url, images_url, **limits)
    cfg["train"].update(output_dir=str(out), pipeline=pipeline)
    chat.reset(), images.reset()
    summary = train(from_dict(cfg))
    return summary, chat.peak, images.peak


def test_concurrent_equals_sequential_and_overlapped_repeats_itself(in_process, world_services):
    root, recipe = in_process
    runs = root / "pipelines"
    seq, seq_chat, seq_images = run_with(
        recipe, world_services, runs / "sequential", "sequential", max_concurrency=8
    )
    con, con_chat, con_images = run_with(
        recipe, world_services, runs / "concurrent", "concurrent", max_concurrency=8
    )
    # the modes did what they say: sequential sends one prompt's k = 4 responses to the judge at once and one
    # pair at a time to the describer and the images; concurrent sends both prompts' responses at once ...
    assert seq_chat <= 4 < con_chat and seq_images == 1 < con_images
    assert seq["step"] >= 3 and seq["rollout/staleness_max"] == 0 == con["rollout/staleness_max"]
    assert_same(runs / "sequential", runs / "concurrent")  # ... and gave the same run
    one, _, _ = run_with(recipe, world_services, runs / "overlapped-1", "overlapped", max_concurrency=8)
    two, _, _ = run_with(recipe, world_services, runs / "overlapped-2", "overlapped", max_concurrency=8)
    assert_same(runs / "overlapped-1", runs / "overlapped-2")
    assert (
        one == two and one["rollout/staleness_max"] == 1
    )  # batches sampled before the previous one's updates
    stale = [e["step"] for e in experiences(runs / "overlapped-1")]
    assert stale != [e["step"] for e in experiences(runs / "sequential")]


def test_metrics_lines_describe_their_window(in_process, world_services):
    root, recipe = in_process
    run = root / "pipelines" / "sequential"
    if not (run / "metrics.jsonl").exists():
        run_with(recipe, world_services, run, "sequential")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    totals = [m["judge/calls_total"] for m in lines]
    assert totals == sorted(totals) and totals[-1] > totals[0]
    # the per-window pair yield, weighed by the window's prompts, adds up to the run's total pairs
    prompts = [m["prompts/total"] - (lines[i - 1]["prompts/total"] if i else 0) for i, m in enumerate(lines)]
    pairs = sum(m["pairs/per_prompt"] * p for m, p in zip(lines, prompts, strict=True))
    assert pairs == pytest.approx(lines[-1]["pairs/total"])
    assert len({m["pairs/per_prompt"] for m in lines}) > 1  # windows differ: not a running ratio


def test_overlapped_killed_and_resumed_equals_uninterrupted(tiny_world):
    """kill -9 while the checkpoint of step 3 is half written, with a sampled batch in flight; the resume
    rebuilds that batch from its saved samples and ends as the uninterrupted overlapped run."""
    root, recipe, environ = tiny_world
    full, crashed = root / "overlapped-full", root / "overlapped-crash"
    start = ["train", "--config", str(recipe), "--train.pipeline", "overlapped"]
    out = run_ovip([*start, "--train.output_dir", str(full)], environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    out = run_ovip(
        [*start, "--train.output_dir", str(crashed)],
        {**environ, "OVIP_TEST_KILL_AT": "writing@3"},
        timeout=600,
    )
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    saved = json.loads((checkpoint.latest(crashed) / "state.json").read_text())
    assert saved["step"] == 2 and saved["inflight"] and saved["inflight"][0]["groups"]  # a batch in flight
    out = run_ovip(["train", "--resume", str(crashed)], environ, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same(full, crashed)
    assert json.loads((full / "summary.json").read_text()) == json.loads(
        (crashed / "summary.json").read_text()
    )


def test_a_judge_that_dies_stops_the_run_at_the_error_budget_then_resumes(in_process, world_services):
    """The judge answers its first 20 requests, then resets every connection (a dying server); the run stops
    at the error budget (more than half of the judge's last 8 calls failed) with a checkpoint, and resumes,
    to the end, once the judge answers again."""
    root, recipe = in_process
    chat_url, images_url, _, _ = world_services
    world = world_reply()
    state = {"back": False}

    def judge(index, request):
        if index >= 20 and not state["back"]:
            return Fault("reset")
        return Fault("ok", text=world(request["messages"], request))

    run = root / "judge-dies"
    with FaultServer(judge) as server:
        cfg = http_services(recipe, chat_url, images_url, max_concurrency=4)
        cfg["judge"]["base_url"] = server.url
        cfg["train"].update(output_dir=str(run), failure_window=8, max_failure_rate=0.5)
        with pytest.raises(ServiceFailure, match=r"judge: \d+ of its last 8 calls failed") as stopped:
            train(from_dict(cfg))
        assert "ovip train --resume" in str(stopped.value)
        saved = json.loads((checkpoint.latest(run) / "state.json").read_text())
        assert saved["inflight"] and saved["inflight"][0]["start"] == saved["cursor"] < 12  # sent again
        log = (run / "train.log").read_text()
        assert "judge failed: connection error" in log and "stopped at step" in log
        assert not (run / "summary.json").exists()
        state["back"] = True
        summary = resume(run)
    assert summary["prompts"] == 12 and summary["step"] >= saved["step"]
    assert summary["judge/calls_total"] > saved["counters"]["judged"]


def test_max_staleness_samples_further_ahead_and_repeats_itself(in_process, world_services):
    """train.max_staleness 2: three batches in flight, their services at once (each batch's judging after the
    one before, so the judge's cache sees the same verdicts), batches absorbed two steps behind at most; two
    runs are the same run."""
    root, recipe = in_process
    runs = root / "pipelines"
    depth = {**recipe, "train": {**recipe["train"], "max_staleness": 2}}
    one, _, _ = run_with(depth, world_services, runs / "stale-2-a", "overlapped", max_concurrency=8)
    two, _, _ = run_with(depth, world_services, runs / "stale-2-b", "overlapped", max_concurrency=8)
    assert_same(runs / "stale-2-a", runs / "stale-2-b")
    assert one == two and one["rollout/staleness_max"] == 2 and one["step"] >= 4


def sampled(start: int, step: int, failed: bool = False) -> Sampling:
    from PIL import Image

    from ovip.records import Example
    from ovip.train.stages import Rollout, SampledBatch

    rollout = Rollout(
        Example("e", "q", "a"), Image.new("RGB", (4, 4)), 0, [], [], "HTTP 500" if failed else None
    )
    return Sampling.done(SampledBatch(start, step, [[]], [rollout], 1))


def test_an_update_waits_for_a_batch_it_would_leave_too_far_behind():
    pipeline = Pipeline(TrainConfig(pipeline="overlapped", max_staleness=2), None, StageTimers())
    assert pipeline.depth == 3
    pipeline.inflight = [sampled(0, 3), sampled(1, 4)]
    assert pipeline.allows_update(4) and not pipeline.allows_update(
        5
    )  # step 6 would leave the first 3 behind
    today = Pipeline(TrainConfig(pipeline="overlapped"), None, StageTimers())
    today.inflight = pipeline.inflight
    assert today.depth == 2 and today.allows_update(99)  # default: one batch ahead, however many steps


def test_a_checkpoint_samples_a_batch_with_a_failed_prompt_again(tmp_path):
    """The batches in flight are saved up to the first one whose sampling failed for a prompt: a resume samples
    it (and every later one) again rather than training on a batch with a hole."""
    pipeline = Pipeline(TrainConfig(pipeline="overlapped", max_staleness=3), None, StageTimers())
    pipeline.inflight = [sampled(0, 1), sampled(1, 1, failed=True), sampled(2, 2)]
    ranks = type("OneRank", (), {"world": 1})()
    assert [b["start"] for b in pipeline.state(ranks)] == [0]
