"""One OpenAI-compatible chat-completions client (vLLM, SGLang, OpenAI) for training and evaluation.

The judge G_r and the describer G_diff are chat services (Appendix B.2, "Software infrastructure"). The
transport (`ovip.services.client`) bounds every call: a total deadline per attempt, at most `1 + max_retries`
attempts (retried: timeouts, connection errors, HTTP 408, 409, 429, 5xx; `Retry-After` honoured up to
`max_wait`), replies capped in size, replicas with failover, at most `max_concurrency` requests in flight per
replica. So a call returns within `CallLimits.worst_case` seconds per replica whatever the server does, and
whatever goes wrong comes back as `Reply(text=None, error=...)`: a failure is a value that the caller counts.
A reply without a usable `choices[0].message.content` (malformed JSON, an empty answer) fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovip.services.client import (  # noqa: F401  (re-exported: the chat client's public names)
    PLACEHOLDER_API_KEY,
    RETRY_STATUSES,
    CallLimits,
    ServiceClient,
    Unusable,
    event_loop,
    parse_json,
)


@dataclass(frozen=True)
class Reply:
    """The assistant's text, or None and why; `attempts` requests were sent over `seconds`."""

    text: str | None
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.text is not None


def completion_text(raw: bytes) -> str:
    """`choices[0].message.content` of a chat.completion body; `Unusable` when there is none."""
    data = parse_json(raw)
    try:
        text = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as e:
        raise Unusable(
            f"malformed reply ({type(e).__name__}): {raw[:300].decode('utf-8', 'replace')}"
        ) from None
    if not isinstance(text, str) or not text:
        raise Unusable("empty reply")
    return text


class ChatClient:
    """Chat completions from `base_url` (e.g. "http://127.0.0.1:8000/v1"; several replicas comma-separated)
    with `model`, within `limits`. The key is read from the environment variable `api_key_env`; when it is
    unset a placeholder is sent."""

    def __init__(
        self,
        base_url,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        limits: CallLimits = CallLimits(),
        max_concurrency: int = 64,
    ):
        self.service = ServiceClient(base_url, api_key_env, limits, max_concurrency)
        self.model, self.limits = model, limits

    @property
    def urls(self) -> list[str]:
        return self.service.urls

    @property
    def api_key(self) -> str:
        return self.service.api_key

    def complete(self, messages: list[dict], **params) -> Reply:
        """One chat completion of `messages` (text or multimodal content lists); `params` are request
        fields such as temperature, top_p, max_tokens. Returns within `limits.worst_case` seconds."""
        return self.complete_many([messages], **params)[0]

    def complete_many(self, batch: list[list[dict]], concurrency: int = 16, **params) -> list[Reply]:
        """`complete` for each of `batch`, at most `concurrency` at a time; same order and length."""
        bodies = [{"model": self.model, "messages": m, **params} for m in batch]
        outcomes = self.service.call_many("/chat/completions", bodies, completion_text, concurrency)
        return [Reply(o.value, o.error, o.attempts, o.seconds) for o in outcomes]

    def close(self) -> None:
        self.service.close()
