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
    assert (
        len(infos) == 5 and len(warnings) == 4
    )  # HTTP 500, timeout, HTTP 503 of the judge; HTTP 500 of the describer
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
