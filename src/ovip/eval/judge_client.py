"""The evaluation judges' client: the training client (`ovip.services.chat.ChatClient`) with the `eval.judge`
settings of the config (`ovip.config.EvalJudgeConfig`).

OViP's evaluation judges are all gpt-4o-2024-05-13 (paper §3.1, Evaluation; Appendix C): Object HalBench
extraction and MMHal at temperature 0, LLaVA-Bench review at 0.2. A judge call has the same limits as a
training call: a total deadline per attempt, a bounded number of attempts and a stated worst case
(`CallLimits.worst_case`); a failed call is None to the benchmark, which counts it (`n_failed`), and its
error text is logged and kept in `JudgeClient.errors`.
"""

from __future__ import annotations

import logging

from ovip.config import EvalJudgeConfig
from ovip.services.chat import CallLimits, ChatClient

log = logging.getLogger(__name__)


class JudgeClient:
    """`messages -> reply text | None` for the judged benchmarks, at the benchmark's `temperature`; `calls`,
    `failures` and the last `errors` (text, at most 100) grow over its life."""

    def __init__(self, config: EvalJudgeConfig, temperature: float = 0.0):
        self.config, self.temperature = config, temperature
        limits = CallLimits(
            timeout=config.timeout,
            max_retries=config.max_retries,
            retry_wait=config.retry_wait,
            max_wait=config.max_wait,
        )
        self.client = ChatClient(config.base_url, config.model, config.api_key_env, limits)
        self.calls = 0
        self.failures = 0
        self.errors: list[str] = []

    def __call__(self, messages: list[dict]) -> str | None:
        """One judgment; `messages` may hold multimodal content lists (MMHal's image as a data URL)."""
        reply = self.client.complete(
            messages, temperature=self.temperature, max_tokens=self.config.max_tokens
        )
        self.calls += 1
        if reply.ok:
            return reply.text
        self.failures += 1
        self.errors = (self.errors + [reply.error])[-100:]
        log.warning("judge call failed: %s", reply.error)
        return None


def chat(messages: list[dict], config: EvalJudgeConfig, temperature: float = 0.0) -> str | None:
    """One judgment with a client of its own (for a single call; benchmarks keep one `JudgeClient`)."""
    return JudgeClient(config, temperature)(messages)
