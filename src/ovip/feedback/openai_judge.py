"""G_r over an OpenAI-compatible chat endpoint (paper §2.2, Eq. 1; Appendix B.2; prompt Table 9).

Each response of a group is scored on its own, text-only, against the reference answer, with temperature 0.1
(Appendix B.2). The paper does not say how the judge is called; the authors' trainer sends one request per
response, one after the other. We send the requests of one group concurrently, de-duplicate identical
responses (sampling at T=1.2 still repeats itself, Fig. 10) and keep a small cache of successful verdicts.
`concurrency` bounds the requests in flight per replica over every caller of one judge, so the loop may judge
all the groups of a rollout batch from several threads at once. A failed request or an unparseable reply is
`Judgment(score=None, error=...)`, counted in `failures`; `judge` never raises, and is safe to call from
several threads. Each request ends within `CallLimits.worst_case` seconds once sent (`ovip.services.client`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from ovip.feedback.prompts import judge_prompt, parse_score
from ovip.records import Judgment
from ovip.services.chat import CallLimits, ChatClient, Reply


class OpenAIJudge:
    """`ovip.records.Judge` backed by a chat-completions endpoint (vLLM serving Qwen2.5-7B-Instruct, say).

    Attributes `calls` (requests sent, cache hits excluded), `failures` (requests that gave no score) and
    `cache_hits` (judgments given without a request: from the cache, or a response repeated within one call)
    grow over the judge's life, `calls + cache_hits` being the judgments returned; each judgment says which it
    was (`Judgment.cached`), and the loop counts them into `judge/*` metrics.
    """

    def __init__(
        self,
        base_url,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.1,
        max_tokens: int = 16,
        timeout: float = 30.0,
        max_retries: int = 2,
        retry_wait: float = 1.0,
        max_wait: float = 10.0,
        concurrency: int = 16,
        cache_size: int = 10_000,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.cache_size = cache_size
        limits = CallLimits(
            timeout=timeout, max_retries=max_retries, retry_wait=retry_wait, max_wait=max_wait
        )
        self.client = ChatClient(base_url, model, api_key_env, limits, max_concurrency=concurrency)
        self.calls = 0
        self.failures = 0
        self.cache_hits = 0
        self._lock = threading.Lock()  # counters and cache, shared by the loop's judging threads
        self._cache: OrderedDict[tuple[str, str, str], Judgment] = OrderedDict()

    def judge(self, query: str, responses: list[str], reference: str) -> list[Judgment]:
        """Score each of `responses` (one group, k items) against `reference`; same order and length."""
        verdicts: dict[str, Judgment] = {}
        todo: list[str] = []
        with self._lock:
            for response in dict.fromkeys(responses):  # unique, in order
                cached = self._cache.get((query, response, reference))
                if cached is not None:
                    self._cache.move_to_end((query, response, reference))
                    verdicts[response] = replace(cached, cached=True)
                else:
                    todo.append(response)
        if todo:
            replies = self.client.complete_many(
                [[{"role": "user", "content": judge_prompt(query, r, reference)}] for r in todo],
                concurrency=self.concurrency,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
            with self._lock:
                for response, reply in zip(todo, replies, strict=True):
                    verdict = _verdict(response, reply)
                    self.calls += 1
                    verdicts[response] = verdict
                    if verdict.ok:
                        self._remember((query, response, reference), verdict)
                    else:
                        self.failures += 1
        out, seen = [], set()
        for response in responses:  # a copy each: callers may mutate theirs
            out.append(replace(verdicts[response], cached=verdicts[response].cached or response in seen))
            seen.add(response)
        with self._lock:
            self.cache_hits += sum(j.cached for j in out)
        return out

    def _remember(self, key: tuple[str, str, str], verdict: Judgment) -> None:
        self._cache[key] = verdict
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    @property
    def max_in_flight(self) -> int:
        """Calls the loop may make at once (`train.pipeline` concurrent or overlapped)."""
        return self.client.service.max_in_flight

    def close(self) -> None:
        self.client.close()


def _verdict(response: str, reply: Reply) -> Judgment:
    """The Judgment of one reply: its "Score: x", or a failure that keeps the error and the raw text."""
    if not reply.ok:
        return Judgment(response=response, score=None, error=reply.error)
    score = parse_score(reply.text)
    if score is None:
        return Judgment(
            response=response, score=None, raw=reply.text, error=f"unparseable reply: {reply.text[:100]!r}"
        )
    return Judgment(response=response, score=score, raw=reply.text)
