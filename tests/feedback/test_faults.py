"""Fault injection: the chat client against a real local server that misbehaves at the socket level.

Every call must return within `CallLimits.worst_case` whatever the server does, try at most 1 + max_retries
times, and come back as a value (`Reply.ok` False with the error kept). Small deadlines keep this fast: with
LIMITS, worst_case = 2 attempts x 0.5 s + 1 wait x 0.3 s = 1.3 s.
"""

import logging
import socket
import time

import pytest
from faults import Fault, FaultServer

from ovip.config import EvalJudgeConfig
from ovip.eval.judge_client import JudgeClient
from ovip.feedback.openai_describer import OpenAIDescriber
from ovip.feedback.openai_judge import OpenAIJudge
from ovip.services.chat import CallLimits, ChatClient

LIMITS = CallLimits(timeout=0.5, max_retries=1, retry_wait=0.05, max_wait=0.3)
SLACK = 0.4  # scheduling on a loaded 2-core machine; far below any fault's own duration
HI = [{"role": "user", "content": "hi"}]


def test_worst_case_is_the_stated_formula():
    assert LIMITS.worst_case == pytest.approx(1.3)
    assert CallLimits().worst_case == 3 * 30 + 2 * 10  # the defaults the README states


def first_then(first: Fault, then: Fault = Fault("ok", text="fine")):
    return lambda index, request: first if index == 0 else then


@pytest.mark.parametrize(
    "fault, requests, error",
    [
        (Fault("status", status=500), 2, "HTTP 500: injected 500"),
        (Fault("status", status=503), 2, "HTTP 503"),
        (Fault("status", status=400), 1, "HTTP 400"),  # a client error is not retried
        (Fault("status", status=429, retry_after="60"), 1, "Retry-After 60s > max_wait 0.3s"),
        (Fault("hang"), 2, "timeout: no complete reply within 0.5s"),
        # A valid reply at 1 byte per 0.1 s (about 20 s in all): the old per-read timeout never fired.
        (Fault("trickle", interval=0.1), 2, "timeout"),
        (Fault("reset"), 2, "connection error"),
        (Fault("malformed"), 1, "malformed reply"),
        (Fault("ok", text=""), 1, "empty reply"),
        (Fault("oversized", size=5_000_000), 1, "reply of 5000000 bytes > max_reply_bytes 1000000"),
        (Fault("oversized", size=5_000_000, declared=False), 1, "reply larger than max_reply_bytes"),
    ],
    ids=lambda v: v.kind + (str(v.status) if v.kind == "status" else "") if isinstance(v, Fault) else None,
)
def test_every_fault_is_a_bounded_counted_failure(fault, requests, error):
    with FaultServer(lambda index, request: fault) as server:
        client = ChatClient(server.url, "m", limits=LIMITS)
        start = time.monotonic()
        reply = client.complete(HI)
        elapsed = time.monotonic() - start
        client.close()
        assert not reply.ok and reply.text is None
        assert error in reply.error, reply.error
        assert reply.attempts == requests == len(server.log)
    assert elapsed <= LIMITS.worst_case + SLACK, (fault.kind, elapsed)


@pytest.mark.parametrize(
    "first",
    [
        Fault("status", status=500),
        Fault("status", status=429, retry_after="0.2"),
        Fault("hang"),
        Fault("reset"),
        Fault("trickle", interval=0.1),
    ],
    ids=lambda f: f.kind,
)
def test_a_transient_fault_is_retried_and_recovers(first):
    with FaultServer(first_then(first)) as server:
        client = ChatClient(server.url, "m", limits=LIMITS)
        start = time.monotonic()
        reply = client.complete(HI)
        elapsed = time.monotonic() - start
        assert reply.ok and reply.text == "fine" and reply.attempts == 2 == len(server.log)
    assert elapsed <= LIMITS.worst_case + SLACK
    if first.retry_after:
        assert elapsed >= 0.2  # the server's Retry-After was honoured (longer than retry_wait)


def test_connection_refused_is_retried_then_counted():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reply = ChatClient(f"http://127.0.0.1:{port}/v1", "m", limits=LIMITS).complete(HI)
    assert not reply.ok and "connection error" in reply.error and reply.attempts == 2


def test_a_judge_group_under_mixed_faults_ends_within_one_deadline_and_counts_exactly():
    """Eight responses of one group go out concurrently; the group takes one call's worst case, not eight,
    and the judge counts exactly the calls whose last attempt failed."""
    faults = {
        "r0": Fault("hang"),
        "r1": Fault("trickle", interval=0.1),
        "r2": Fault("reset"),
        "r3": Fault("status", status=500),
        "r4": Fault("malformed"),
        "r5": Fault("ok", text="Score: 8/100"),
        "r6": Fault("ok", text="Score: 7"),
        "r7": Fault("ok", text="Score: [3]"),
    }

    def script(index, request):
        prompt = request["messages"][0]["content"]
        return faults[prompt.split("# Response\n", 1)[1].split("\n", 1)[0]]

    with FaultServer(script) as server:
        judge = OpenAIJudge(server.url, "m", timeout=0.5, max_retries=1, retry_wait=0.05, max_wait=0.3)
        start = time.monotonic()
        verdicts = judge.judge("Q", list(faults), "reference")
        elapsed = time.monotonic() - start
        kinds = server.kinds()
    assert [v.score for v in verdicts] == [None] * 6 + [7.0, 3.0]
    assert "unparseable" in verdicts[5].error  # a 0-100 scale is not a score out of 10
    assert (judge.calls, judge.failures) == (8, 6)
    # retried kinds were sent twice, the others once: 4 x 2 + 4 x 1 requests
    assert sorted(kinds) == sorted(
        ["hang", "trickle", "reset", "status"] * 2 + ["malformed", "ok", "ok", "ok"]
    )
    assert elapsed <= LIMITS.worst_case + SLACK, elapsed


def test_describer_under_faults_is_bounded_and_counted():
    replies = iter(
        [Fault("hang"), Fault("hang"), Fault("ok", text="Score: -1"), Fault("ok", text="a red cube .")]
    )
    with FaultServer(lambda index, request: next(replies)) as server:
        describer = OpenAIDescriber(
            server.url, "m", timeout=0.5, max_retries=1, retry_wait=0.05, max_wait=0.3
        )
        start = time.monotonic()
        hung = describer.describe("Q", "a", "b")
        assert time.monotonic() - start <= LIMITS.worst_case + SLACK
        verdict, good = describer.describe("Q", "a", "b"), describer.describe("Q", "a", "b")
    assert "timeout" in hung.error and "judge verdict" in verdict.error and good.text == "a red cube ."
    assert (describer.calls, describer.failures) == (3, 2)


def test_eval_judge_client_is_the_same_client(caplog):
    """The evaluation judge has the training client's deadline, attempts and error text (it used to swallow
    every error and retry on its own schedule)."""
    faults = iter(
        [
            Fault("trickle", interval=0.1),
            Fault("trickle", interval=0.1),
            Fault("status", status=500),
            Fault("ok", text="Rating: 4"),
        ]
    )
    with FaultServer(lambda index, request: next(faults)) as server:
        config = EvalJudgeConfig(
            base_url=server.url, model="judge", timeout=0.5, max_retries=1, retry_wait=0.05, max_wait=0.3
        )
        judge = JudgeClient(config)
        assert judge.client.limits == LIMITS
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="ovip.eval.judge_client"):
            failed = judge([{"role": "user", "content": "rate"}])
        assert time.monotonic() - start <= LIMITS.worst_case + SLACK
        assert failed is None and "timeout" in caplog.text  # the error is kept, not swallowed
        assert judge([{"role": "user", "content": "rate"}]) == "Rating: 4"  # 500, then retried
    assert (judge.calls, judge.failures) == (2, 1)
    assert judge.errors and "timeout" in judge.errors[0]
