"""A thin client for OpenAI-compatible chat endpoints used as evaluation judges (STYLE.md §10).

One function, `chat`, returns the reply text or None: a failed call is a value that the benchmark
counts (`n_failed`), never an exception from inside an evaluation loop. OViP's judges are all
gpt-4o-2024-05-13 (notes/benchmarks.md §8): Object HalBench extraction and MMHal at temperature 0,
LLaVA-Bench review at 0.2.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class JudgeClientConfig:
    """Where and how to call the judge."""

    base_url: str = "https://api.openai.com/v1"  # any OpenAI-compatible server (vLLM, Azure proxy, ...)
    model: str = "gpt-4o-2024-05-13"  # the judge of every GPT step in OViP's evaluation (§8)
    api_key_env: str = "OPENAI_API_KEY"  # name of the env var holding the key; the key is never stored
    temperature: float = 0.0  # 0 for extraction / MMHal, 0.2 for LLaVA-Bench
    max_tokens: int = 512
    timeout: float = 60.0  # seconds per request
    retries: int = 3  # attempts after the first one
    retry_wait: float = 1.0  # seconds, doubled after each failed attempt

    def __post_init__(self):
        if self.retries < 0 or self.timeout <= 0:
            raise ValueError("retries must be >= 0 and timeout > 0")


def make_client(config: JudgeClientConfig):
    """An `openai.OpenAI` client for `config`; a missing key env var gives the placeholder "EMPTY"
    (local servers ignore it; a real endpoint answers 401, which `chat` turns into None)."""
    from openai import OpenAI

    return OpenAI(base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "EMPTY",
                  timeout=config.timeout, max_retries=0)  # retries are ours, so they are counted here


def chat(messages: list[dict], config: JudgeClientConfig, client=None) -> str | None:
    """Send one chat completion; the reply text, or None after `1 + retries` failed attempts.

    `messages` may hold multimodal content lists (MMHal's image as a data URL).
    """
    client = client or make_client(config)
    wait = config.retry_wait
    for attempt in range(config.retries + 1):
        try:
            reply = client.chat.completions.create(model=config.model, messages=messages,
                                                   temperature=config.temperature,
                                                   max_tokens=config.max_tokens)
            text = reply.choices[0].message.content
            if text:
                return text
        except Exception:  # network, HTTP status, malformed payload: all are a failed attempt
            pass
        if attempt < config.retries:
            time.sleep(wait)
            wait *= 2
    return None
