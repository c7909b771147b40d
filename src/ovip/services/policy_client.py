"""A thin client for a policy served over vLLM's OpenAI-compatible API (`ovip serve policy`, `vllm serve`).

Transport is `ovip.services.client.ServiceClient`: replicas comma-separated, a total deadline per attempt,
bounded retries, failover to a live replica, the bearer key from `$api_key_env`. What goes wrong comes back as
a value (`PromptReply.ok` False, `error` saying why), never as an exception from inside a call.

    client = PolicyClient("http://127.0.0.1:8000/v1,http://127.0.0.1:8001/v1")
    client.load_adapter("ovip-step-3", "/runs/x/rollout/step-3")      # on every replica; [] when all loaded
    replies = client.sample(images, queries, k=16, temperature=1.2, top_p=0.8, max_new_tokens=256,
                            seeds=[prompt_seed(seed, i) for i in positions], adapter="ovip-step-3")
    replies[0].samples[0].text, .cut, .logprobs                         # one PromptReply per prompt

`sample` sends one request per prompt (`n` = k), all in flight at once within the client's bound
(`max_concurrency` per replica); a server batches concurrent requests itself. A reply whose `model` is not the
adapter asked for (a server that did not load it, or samples the base model) is an error value naming both,
with `PromptReply.model` set to what the reply named: the caller may stop on it.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from ovip.services.client import CallLimits, ServiceClient, Unusable, parse_json

DEFAULT_LIMITS = CallLimits(timeout=300.0, max_retries=2, max_reply_bytes=32_000_000)


@dataclass(frozen=True)
class ServedSample:
    """One sampled answer: its text, whether it was cut at max_new_tokens (finish_reason "length"), and, when
    log-probs were asked for, per generated token (an end-of-sequence token included) its id and its log-prob
    at temperature 1 with no top-p (None otherwise; ids None from a server that does not return them)."""

    text: str
    cut: bool
    logprobs: tuple[float, ...] | None = None
    token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PromptReply:
    """The k samples of one prompt, or () and why not. `model` is the adapter the reply named (None without a
    reply); `url`, `attempts` and `seconds` describe the call."""

    samples: tuple[ServedSample, ...]
    error: str | None = None
    model: str | None = None
    url: str = ""
    attempts: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class PolicyClient:
    """Sampling and adapter management on the replicas of `base_urls` (a comma-separated string or a list of
    base URLs ending in /v1)."""

    def __init__(
        self,
        base_urls,
        api_key_env: str = "OVIP_API_KEY",
        limits: CallLimits = DEFAULT_LIMITS,
        max_concurrency: int = 16,
    ):
        self.transport = ServiceClient(base_urls, api_key_env, limits, max_concurrency)
        self.urls = self.transport.urls
        # Adapter loads go to each replica in turn, not to whichever is least busy.
        self.replicas = [ServiceClient(url, api_key_env, limits, 1) for url in self.urls]

    def close(self) -> None:
        for client in (self.transport, *self.replicas):
            client.close()

    def sample(
        self,
        images: list[Image.Image | None],
        queries: list[str],
        k: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seeds: list[int] | None,
        adapter: str,
        logprobs: bool = True,
    ) -> list[PromptReply]:
        """k samples per (image, query) from `adapter` (a loaded adapter's name or the base model's), one
        request per prompt with `seeds[i]` as its seed; one `PromptReply` per prompt, in order."""
        if len(images) != len(queries) or (seeds is not None and len(seeds) != len(queries)):
            raise ValueError(
                f"{len(images)} images, {len(queries)} queries, {len(seeds or [])} seeds: one each per prompt"
            )
        bodies = [
            request(image, query, k, temperature, top_p, max_new_tokens, seed, adapter, logprobs)
            for image, query, seed in zip(images, queries, seeds or [None] * len(queries), strict=True)
        ]
        outcomes = self.transport.call_many("/chat/completions", bodies, lambda raw: parse_reply(raw, k))
        replies = []
        for outcome in outcomes:
            if not outcome.ok:
                replies.append(
                    PromptReply((), outcome.error, None, outcome.url, outcome.attempts, outcome.seconds)
                )
                continue
            model, samples = outcome.value
            error = None
            if model != adapter:
                error = f"the reply came from model {model!r}, not the requested adapter {adapter!r}"
                error += f" ({outcome.url})"
                samples = ()
            replies.append(PromptReply(samples, error, model, outcome.url, outcome.attempts, outcome.seconds))
        return replies

    def load_adapter(self, name: str, path: str, replace: bool = False) -> list[str]:
        """Load the PEFT adapter folder `path` as `name` on every replica (`replace`: vLLM's load_inplace, for
        a name already loaded). The servers read the path: it must be the same on their filesystem. Returns
        one error per replica whose load failed, naming it ([] when every replica loaded it)."""
        body = {"lora_name": name, "lora_path": str(path)}
        if replace:
            body["load_inplace"] = True
        return self._on_every_replica("/load_lora_adapter", body, f"load adapter {name!r} from {path}")

    def unload_adapter(self, name: str) -> list[str]:
        """Unload `name` on every replica; one error per replica that did not (an unknown name is one)."""
        return self._on_every_replica("/unload_lora_adapter", {"lora_name": name}, f"unload adapter {name!r}")

    def models(self) -> list[list[str] | str]:
        """Per replica, the names it serves (the base model first, then the loaded adapters), or the error."""
        outcomes = self._each("/models", None, model_ids, method="GET")
        return [o.value if o.ok else f"{url}: {o.error}" for url, o in zip(self.urls, outcomes, strict=True)]

    def _on_every_replica(self, path: str, body: dict, what: str) -> list[str]:
        outcomes = self._each(path, body, lambda raw: raw.decode("utf-8", "replace") or "ok")
        return [f"{what} on {url}: {o.error}" for url, o in zip(self.urls, outcomes, strict=True) if not o.ok]

    def _each(self, path, body, parse, method: str = "POST"):
        with ThreadPoolExecutor(len(self.replicas)) as pool:
            return list(pool.map(lambda c: c.call(path, body, parse, method=method), self.replicas))


def request(image, query, k, temperature, top_p, max_new_tokens, seed, adapter, logprobs) -> dict:
    """The chat-completions body for one prompt: the image as a lossless PNG data URL, then the query."""
    content = [] if image is None else [{"type": "image_url", "image_url": {"url": data_url(image)}}]
    content.append({"type": "text", "text": query})
    body = {
        "model": adapter,
        "messages": [{"role": "user", "content": content}],
        "n": k,
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_new_tokens,
        "logprobs": logprobs,
    }
    if (
        logprobs
    ):  # vLLM's extension: each token as "token_id:<id>", so the trainer scores exactly these tokens
        body["return_tokens_as_token_ids"] = True
    if seed is not None:
        body["seed"] = seed
    return body


def data_url(image: Image.Image) -> str:
    """A base64 PNG data URL: lossless, so the server sees exactly the pixels the trainer has."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def parse_reply(raw: bytes, k: int) -> tuple[str, tuple[ServedSample, ...]]:
    """(the reply's model, its k samples); `Unusable` for a reply without them."""
    data = parse_json(raw)
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != k:
        got = len(choices) if isinstance(choices, list) else choices
        raise Unusable(f"malformed reply: expected {k} choices, got {got!r}")
    samples = []
    for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
        try:
            text = choice["message"]["content"]
            finish = choice.get("finish_reason")
            entries = (choice.get("logprobs") or {}).get("content")
            logprobs = None if entries is None else tuple(float(e["logprob"]) for e in entries)
            tokens = [str(e.get("token", "")) for e in entries or []]
            ids = None
            if entries and all(t.startswith("token_id:") for t in tokens):
                ids = tuple(int(t.removeprefix("token_id:")) for t in tokens)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise Unusable(f"malformed choice in reply ({type(e).__name__}: {e})") from None
        if not isinstance(text, str) or finish not in ("stop", "length"):
            raise Unusable(f"malformed choice in reply: content {text!r:.60}, finish_reason {finish!r}")
        samples.append(ServedSample(text.strip(), finish == "length", logprobs, ids))
    return str(data.get("model")), tuple(samples)


def model_ids(raw: bytes) -> list[str]:
    data = parse_json(raw).get("data")
    if not isinstance(data, list):
        raise Unusable("malformed /models reply: no data list")
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


def unreachable(error: str) -> bool:
    """Whether a failed call's error (`PolicyClient.load_adapter`'s, ...) says the replica did not answer (it
    refused or dropped the connection, or sent no reply in time: it is down), rather than answering with an
    error: read from the transport's wording (`ovip.services.client.ServiceClient`)."""
    return ": connection error: " in error or ": timeout: " in error
