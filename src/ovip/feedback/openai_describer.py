"""G_diff over an OpenAI-compatible chat endpoint (paper §2.2, Eq. 3; Appendix B.2; prompt Tables 10-11).

Decoding follows Appendix B.2: temperature 0.1, top_p 0.9, at most 128 new tokens.
"""

from __future__ import annotations

import threading

from ovip.feedback.prompts import clean_description, description_problem, description_prompt
from ovip.records import Description
from ovip.services.chat import CallLimits, ChatClient


class OpenAIDescriber:
    """`ovip.records.Describer`: T- = G_diff(Q, A+, A-), a description of an image in which A- is right.

    The prompt of Tables 10-11 asks for an image that "aligns with the correct answer and differs from the
    incorrect responses". OViP wants the negative image I-, in which the *rejected* answer is true, so — exactly
    as the authors' code does on purpose (`_get_img_generation_instruction`: "json's response should be the
    correct one while gt is the wrong one") — the REJECTED answer A- goes into the prompt's `<Answer>`
    (correct-answer) slot and the CHOSEN answer A+ into its `<Response>` slot.

    The reply is cleaned of an "<Output Description>" header and an "Explanation:" tail; an empty result, one
    that cannot be a description (`ovip.feedback.prompts.description_problem`: a "Score:" verdict, more words
    than `max_tokens` tokens can hold) or a failed request is `Description(text=None, error=...)`, counted in
    `failures`. `describe` never raises, and may be called from several threads at once (at most
    `max_concurrency` requests in flight per replica).
    """

    def __init__(
        self,
        base_url,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.1,
        top_p: float = 0.9,
        max_tokens: int = 128,
        timeout: float = 30.0,
        max_retries: int = 2,
        retry_wait: float = 1.0,
        max_wait: float = 10.0,
        max_concurrency: int = 16,
    ):
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        limits = CallLimits(
            timeout=timeout, max_retries=max_retries, retry_wait=retry_wait, max_wait=max_wait
        )
        self.client = ChatClient(base_url, model, api_key_env, limits, max_concurrency=max_concurrency)
        self.calls = 0
        self.failures = 0
        self._lock = threading.Lock()

    def describe(self, query: str, chosen: str, rejected: str) -> Description:
        """Describe an image for which `rejected` answers `query` correctly and `chosen` does not."""
        with self._lock:
            self.calls += 1
        # The deliberate swap: rejected -> "answer" (correct) slot, chosen -> "response" (inaccurate) slot.
        prompt = description_prompt(question=query, answer=rejected, response=chosen)
        reply = self.client.complete(
            [{"role": "user", "content": prompt}],
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
        )
        if not reply.ok:
            return self._fail(Description(text=None, error=reply.error))
        description = clean_description(reply.text)
        problem = description_problem(description, self.max_tokens)
        if problem:
            error = f"{problem}: {reply.text[:100]!r}"
            return self._fail(Description(text=None, raw=reply.text[:1000], error=error))
        return Description(text=description, raw=reply.text)

    def _fail(self, description: Description) -> Description:
        with self._lock:
            self.failures += 1
        return description

    @property
    def max_in_flight(self) -> int:
        """Calls the loop may make at once (`train.pipeline` concurrent or overlapped)."""
        return self.client.service.max_in_flight

    def close(self) -> None:
        self.client.close()
