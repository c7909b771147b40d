"""Window metrics, the error budget and the error log, on numbers worked out by hand."""

import logging

import pytest

from ovip.train.counters import Counters, ErrorBudget, ErrorLog


def test_a_metrics_line_describes_its_window_and_keeps_running_totals():
    """Window 1: 4 prompts, 2 pairs, 10 of 20 judgments failed. Window 2: 4 more prompts, 6 more pairs, none
    failed of 20. The second line says 6/4 = 1.5 pairs per prompt and a failure rate of 0/20, not the running
    8/8 = 1.0 and 10/40 = 0.25; the totals say 8 pairs and 10 failures."""
    first = Counters(
        prompts=4,
        pairs=2,
        judged=20,
        judge_failures=10,
        score_sum=50.0,
        batches=2,
        staleness_sum=1,
        staleness_max=1,
    )
    now = Counters(
        prompts=8,
        pairs=8,
        judged=40,
        judge_failures=10,
        score_sum=110.0,
        batches=4,
        staleness_sum=1,
        staleness_max=1,
        descriptions=9,
        description_failures=1,
        negatives=8,
        negative_failures=0,
    )
    window = now.metrics(since=first)
    assert window["pairs/per_prompt"] == 1.5 and window["judge/failure_rate"] == 0.0
    assert window["judge/mean_score"] == 60.0 / 20  # (110 - 50) over the window's 20 scored responses
    assert window["rollout/staleness"] == 0.0  # no stale batch in this window (1 stale step in the first)
    assert window["describer/failure_rate"] == 1 / 9
    assert (
        window["pairs/total"] == 8 and window["judge/failures_total"] == 10 and window["prompts/total"] == 8
    )
    whole = now.metrics()
    assert whole["pairs/per_prompt"] == 1.0 and whole["judge/failure_rate"] == 0.25
    assert whole["rollout/staleness"] == 0.25 and whole["rollout/staleness_max"] == 1
    assert Counters().metrics()["judge/failure_rate"] == 0.0  # an empty window divides by nothing


def test_the_error_budget_needs_a_full_window_over_the_rate():
    budget = ErrorBudget(max_rate=0.5, window=4)
    for failed in (True, True, True):
        budget.record("judge", failed)
    assert budget.exceeded() is None  # 3 calls: the window is not full yet
    budget.record("judge", False)
    assert "judge: 3 of its last 4 calls failed" in budget.exceeded()
    for _ in range(2):
        budget.record("judge", False)
    assert budget.exceeded() is None  # the window slid: 1 of the last 4 failed
    budget.record("judge", True)
    assert budget.exceeded() is None  # 2 of 4 is not more than half
    budget.record("negatives", True)
    assert budget.exceeded() is None  # each service has its own window


def test_every_error_is_logged_and_the_first_of_each_kind_is_a_warning(caplog):
    errors = ErrorLog()
    with caplog.at_level(logging.INFO, logger="ovip.train.counters"):
        for error in (
            "HTTP 500: boom (1 attempts)",
            "HTTP 500: again",
            "timeout: no reply",
            "HTTP 503: busy",
        ):
            errors.note("judge", error)
        errors.note("describer", "HTTP 500: boom")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 4  # HTTP 500, timeout, HTTP 503 of the judge; HTTP 500 of the describer
    assert [r.getMessage() for r in infos] == ["judge failed: HTTP 500: again"]  # each error logged once
    assert all(r.console is False for r in infos)  # for train.log only
    assert list(errors.first) == [
        "judge: HTTP 500",
        "judge: timeout",
        "judge: HTTP 503",
        "describer: HTTP 500",
    ]
    assert errors.first["judge: HTTP 500"] == "judge: HTTP 500: boom (1 attempts)"


@pytest.mark.parametrize(
    "bad",
    [{"pipeline": "async"}, {"max_failure_rate": 0.0}, {"max_failure_rate": 1.5}, {"failure_window": 0}],
)
def test_pipeline_and_budget_settings_are_checked(bad):
    from ovip.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="train."):
        from_dict({"train": bad})


def test_duplicate_rate_uses_the_papers_bar_scaled_to_k():
    """Fig. 10 counts a prompt when fewer than 14 of its 16 samples are distinct: ceil(14 k / 16) of k. Over a
    window of 4 prompts of which 1 fell under the bar, the rate is 1/4."""
    from ovip.train.counters import min_distinct

    assert [min_distinct(k) for k in (16, 8, 4, 2)] == [14, 7, 4, 2]
    window = Counters(prompts=6, duplicate_prompts=3).metrics(since=Counters(prompts=2, duplicate_prompts=2))
    assert window["rollout/duplicate_rate"] == 0.25


def test_cache_hits_are_not_calls_in_a_run_against_a_real_judge_server(tmp_path):
    """Three queries, each asked three times (9 prompts), sampled near-greedily so a prompt's k samples are one
    response and a repeated prompt repeats it (the learning rate is too small to change that). The local judge
    scores query "a" 2 (a fallback pair, so the run trains) and "c" 6, and answers query "b" with a reply that
    is no score (a failure, never cached, so asked every time). Whatever the sampler gives,
    the metrics follow the server's count of requests: `judge/calls_total` is that count, cache hits are
    counted apart, and `judge/failure_rate` is failures / requests (the old counting divided by all judgments,
    cache hits included)."""
    import json
    import re

    import torch
    from PIL import Image

    from ovip.config import Config, RolloutConfig, TrainConfig
    from ovip.feedback.openai_describer import OpenAIDescriber
    from ovip.feedback.openai_judge import OpenAIJudge
    from ovip.negatives.crop import CropSynthesizer
    from ovip.policy.model import LoraSpec, Policy
    from ovip.policy.tiny import tiny_llava
    from ovip.records import Example
    from ovip.services.chat_server import make_app, serve_in_thread
    from ovip.train.loop import OnlineTrainer

    judged = []  # the judge requests that reached the server

    def reply(messages, params):
        if "# Correct answer" not in messages[0]["content"]:
            return "a blue ball ."  # the describer
        judged.append(messages)
        query = re.search(r"# Question\n(.*)\n\n# Response", messages[0]["content"], re.S).group(1)
        return {"query a .": "Score: 2", "query b .": "Score: 7 out of 100", "query c .": "Score: 6"}[query]

    examples = []
    for i, name in enumerate("abc"):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (32, 32), (80 * i, 100, 200 - 60 * i)).save(path)
        examples.append((name, str(path)))
    examples = [
        Example(id=f"{name}{repeat}", query=f"query {name} .", reference="a red cube .", image_path=path)
        for repeat in range(3)
        for name, path in examples
    ]
    model, processor = tiny_llava()
    torch.manual_seed(0)
    policy = Policy(model, processor, lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    cfg = Config(
        rollout=RolloutConfig(k=4, max_new_tokens=4, prompts_per_batch=3, temperature=1e-4),
        train=TrainConfig(lr=1e-7, batch_size=2, micro_batch_size=2, save_every=0),
    )
    with serve_in_thread(make_app(reply)) as url:
        judge = OpenAIJudge(url, "judge", max_retries=0)
        describer = OpenAIDescriber(url, "describer", max_retries=0)
        trainer = OnlineTrainer(cfg, policy, examples, judge, describer, CropSynthesizer(), tmp_path / "run")
        summary = trainer.run()
    requests = len(judged)
    c = trainer.counters
    assert summary["prompts"] == 9
    assert judge.calls == requests and judge.cache_hits > 0 and judge.failures >= 3  # query b, every time
    assert summary["judge/calls_total"] == requests == c.judged - c.judge_cache_hits
    assert summary["judge/cache_hits_total"] == judge.cache_hits == c.judge_cache_hits
    assert summary["judge/failures_total"] == judge.failures
    assert summary["judge/failure_rate"] == judge.failures / requests
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(m["judge/cache_hits"] for m in lines) <= judge.cache_hits  # windows; the last may be unlogged
