"""Tests for ovip.feedback.openai_judge against a real local chat server (no patched functions)."""

import re
import socket
import threading
import time

from ovip.feedback.openai_judge import OpenAIJudge
from ovip.feedback.prompts import judge_prompt
from ovip.services.chat_server import make_app, serve_in_thread


def _response_of(messages) -> str:
    """The response slot of a Table 9 prompt."""
    return re.search(r"# Response\n(.*)\n\n# Correct answer", messages[0]["content"], re.S).group(1)


def scripted(behaviours: dict, default="Score: [5]\n"):
    """A reply_fn that answers per response: a string, or a callable (e.g. sleeping / raising)."""

    def reply(messages, params):
        action = behaviours.get(_response_of(messages), default)
        return action() if callable(action) else action

    return reply


def test_scores_each_response_in_order_with_paper_settings():
    seen = []

    def reply(messages, params):
        seen.append((messages, params))
        return f"Score: [{_response_of(messages)[-1]}]\n"  # response "answer 3" -> 3

    with serve_in_thread(make_app(reply)) as base_url:
        judge = OpenAIJudge(base_url, model="qwen", max_retries=0)
        verdicts = judge.judge("Q?", ["answer 3", "answer 9", "answer 0"], "ref")
    assert [v.score for v in verdicts] == [3.0, 9.0, 0.0]
    assert [v.response for v in verdicts] == ["answer 3", "answer 9", "answer 0"]
    assert all(v.ok and v.error is None for v in verdicts)
    assert (judge.calls, judge.failures) == (3, 0)
    messages, params = seen[0]
    assert messages[0]["content"] == judge_prompt("Q?", _response_of(messages), "ref")
    assert params["temperature"] == 0.1 and params["max_tokens"] == 16 and params["model"] == "qwen"


def test_requests_of_a_group_run_concurrently():
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def reply(messages, params):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return "Score: 6"

    with serve_in_thread(make_app(reply)) as base_url:
        judge = OpenAIJudge(base_url, model="m", max_retries=0, concurrency=8)
        start = time.monotonic()
        verdicts = judge.judge("Q", [f"r{i}" for i in range(8)], "ref")
        elapsed = time.monotonic() - start
    assert [v.score for v in verdicts] == [6.0] * 8
    assert state["peak"] > 1
    assert elapsed < 8 * 0.2


def test_duplicates_cost_one_call_and_successes_are_cached():
    app = make_app(lambda m, p: "Score: 8")
    with serve_in_thread(app) as base_url:
        judge = OpenAIJudge(base_url, model="m", max_retries=0)
        verdicts = judge.judge("Q", ["same", "same", "other", "same"], "ref")
        assert [v.score for v in verdicts] == [8.0] * 4
        assert verdicts[0] is not verdicts[1]  # callers may mutate their copy
        assert (judge.calls, app.state.requests) == (2, 2)
        assert [v.cached for v in verdicts] == [False, True, False, True]  # repeats cost no request
        again = judge.judge("Q", ["same", "other"], "ref")
        assert (judge.calls, app.state.requests, judge.cache_hits) == (2, 2, 4)
        assert all(v.cached and v.score == 8.0 for v in again)
        judge.judge("Q", ["same"], "another reference")  # the key includes the reference
        assert app.state.requests == 3


def test_failures_are_values_and_the_group_goes_on():
    def boom():
        raise RuntimeError("model crashed")

    behaviours = {
        "crash": boom,  # HTTP 500
        "slow": lambda: time.sleep(1.0) or "Score: 9",  # beyond the timeout
        "garbage": "The response is quite good overall.",
        "too high": "Score: 12",
    }
    with serve_in_thread(make_app(scripted(behaviours))) as base_url:
        judge = OpenAIJudge(base_url, model="m", timeout=0.3, max_retries=0)
        verdicts = judge.judge("Q", ["fine", "crash", "slow", "garbage", "too high", "also fine"], "ref")
        by_response = {v.response: v for v in verdicts}
        assert by_response["fine"].score == 5.0 and by_response["also fine"].score == 5.0
        assert "HTTP 500" in by_response["crash"].error and "model crashed" in by_response["crash"].error
        assert "timeout" in by_response["slow"].error
        assert "unparseable" in by_response["garbage"].error
        assert by_response["garbage"].raw == "The response is quite good overall."
        assert "unparseable" in by_response["too high"].error
        assert all(by_response[r].score is None and not by_response[r].ok for r in behaviours)
        assert (judge.calls, judge.failures) == (6, 4)
        # failures are not cached: the same response is asked again next time
        (again,) = judge.judge("Q", ["garbage"], "ref")
        assert (judge.calls, judge.failures, judge.cache_hits) == (7, 5, 0) and not again.cached


def test_retries_recover_from_a_transient_error():
    attempts = []

    def flaky(messages, params):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return "Score: 4"

    with serve_in_thread(make_app(flaky)) as base_url:
        judge = OpenAIJudge(base_url, model="m", max_retries=1)
        (verdict,) = judge.judge("Q", ["r"], "ref")
    assert verdict.score == 4.0 and len(attempts) == 2
    assert (judge.calls, judge.failures) == (1, 0)


def test_connection_refused_is_a_failed_judgment():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = OpenAIJudge(f"http://127.0.0.1:{port}/v1", model="m", max_retries=0, timeout=2.0)
    verdicts = judge.judge("Q", ["a", "b"], "ref")
    assert all(v.score is None and "connection" in v.error for v in verdicts)
    assert (judge.calls, judge.failures) == (2, 2)
    assert judge.judge("Q", [], "ref") == []


def test_api_key_from_environment(monkeypatch):
    monkeypatch.delenv("OVIP_TEST_KEY", raising=False)
    assert OpenAIJudge("http://127.0.0.1:1/v1", "m", api_key_env="OVIP_TEST_KEY").client.api_key == "EMPTY"
    monkeypatch.setenv("OVIP_TEST_KEY", "sk-test")
    assert OpenAIJudge("http://127.0.0.1:1/v1", "m", api_key_env="OVIP_TEST_KEY").client.api_key == "sk-test"
