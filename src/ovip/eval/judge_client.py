"""The evaluation judges' client: the training client (`ovip.feedback.chat.ChatClient`) with eval settings.

OViP's evaluation judges are all gpt-4o-2024-05-13 (paper §3.1, Evaluation; Appendix C): Object HalBench
extraction and MMHal at temperature 0, LLaVA-Bench review at 0.2. A judge call has the same limits as a
training call: a total deadline per attempt, a bounded number of attempts and a stated worst case
(`CallLimits.worst_case`); a failed call is None to the benchmark, which counts it (`n_failed`), and its
error text is logged and kept in `JudgeClient.errors`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ovip.feedback.chat import CallLimits, ChatClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeClientConfig:
    """Where and how to call the judge."""

    base_url: str = "https://api.openai.com/v1"  # any OpenAI-compatible server (vLLM, Azure proxy, ...)
    model: str = "gpt-4o-2024-05-13"  # the judge of every GPT step in OViP's evaluation
    api_key_env: str = "OPENAI_API_KEY"  # name of the env var holding the key; the key is never stored
    temperature: float = 0.0  # 0 for extraction / MMHal, 0.2 for LLaVA-Bench
    max_tokens: int = 512
    timeout: float = (
        60.0  # seconds per attempt, connect + send + read (a 512-token review, not a 16-token score)
    )
    max_retries: int = 2  # attempts after the first
    retry_wait: float = 1.0  # seconds before the first retry, doubled after each
    max_wait: float = 10.0  # the longest wait before a retry, the server's Retry-After included

    def limits(self) -> CallLimits:
        return CallLimits(
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_wait=self.retry_wait,
            max_wait=self.max_wait,
        )

    def __post_init__(self):
        self.limits()  # a bad timeout or retry count is a ValueError here, not at the first call


class JudgeClient:
    """`messages -> reply text | None` for the judged benchmarks; `calls`, `failures` and the last
    `errors` (text, at most 100) grow over its life."""

    def __init__(self, config: JudgeClientConfig):
        self.config = config
        self.client = ChatClient(config.base_url, config.model, config.api_key_env, config.limits())
        self.calls = 0
        self.failures = 0
        self.errors: list[str] = []

    def __call__(self, messages: list[dict]) -> str | None:
        """One judgment; `messages` may hold multimodal content lists (MMHal's image as a data URL)."""
        reply = self.client.complete(
            messages, temperature=self.config.temperature, max_tokens=self.config.max_tokens
        )
        self.calls += 1
        if reply.ok:
            return reply.text
        self.failures += 1
        self.errors = (self.errors + [reply.error])[-100:]
        log.warning("judge call failed: %s", reply.error)
        return None


def chat(messages: list[dict], config: JudgeClientConfig) -> str | None:
    """One judgment with a client of its own (for a single call; benchmarks keep one `JudgeClient`)."""
    return JudgeClient(config)(messages)
