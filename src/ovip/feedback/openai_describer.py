"""G_diff over an OpenAI-compatible chat endpoint (paper §2.2, Eq. 3; Appendix B.2; prompt Tables 10-11).

Decoding follows Appendix B.2: temperature 0.1, top_p 0.9, at most 128 new tokens.
"""

from __future__ import annotations

from ovip.feedback.chat import chat, make_client
from ovip.feedback.prompts import clean_description, description_prompt
from ovip.records import Description


class OpenAIDescriber:
    """`ovip.records.Describer`: T- = G_diff(Q, A+, A-), a description of an image in which A- is right.

    The prompt of Tables 10-11 asks for an image that "aligns with the correct answer and differs from the
    incorrect responses". OViP wants the negative image I-, in which the *rejected* answer is true, so — exactly
    as the authors' code does on purpose (`_get_img_generation_instruction`: "json's response should be the
    correct one while gt is the wrong one") — the REJECTED answer A- goes into the prompt's `<Answer>`
    (correct-answer) slot and the CHOSEN answer A+ into its `<Response>` slot.

    The reply is cleaned of an "<Output Description>" header and an "Explanation:" tail; an empty result or a
    failed request is `Description(text=None, error=...)`, counted in `failures`. `describe` never raises.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.1,
        top_p: float = 0.9,
        max_tokens: int = 128,
        timeout: float = 60.0,
        max_retries: int = 2,
    ):
        self.model = model
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.client = make_client(base_url, api_key_env, timeout=timeout, max_retries=max_retries)
        self.calls = 0
        self.failures = 0

    def describe(self, query: str, chosen: str, rejected: str) -> Description:
        """Describe an image for which `rejected` answers `query` correctly and `chosen` does not."""
        self.calls += 1
        # The deliberate swap: rejected -> "answer" (correct) slot, chosen -> "response" (inaccurate) slot.
        prompt = description_prompt(question=query, answer=rejected, response=chosen)
        text, error = chat(
            self.client,
            self.model,
            prompt,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
        )
        if error is not None:
            self.failures += 1
            return Description(text=None, error=error)
        description = clean_description(text)
        if not description:
            self.failures += 1
            return Description(text=None, raw=text, error=f"no description in reply: {text[:100]!r}")
        return Description(text=description, raw=text)

    def close(self) -> None:
        self.client.close()
