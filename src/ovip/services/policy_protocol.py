"""The wire format of `ovip serve policy` (`ovip.services.policy`): a chat-completions request read into a
`SampleJob`, with a `RequestError` naming the first bad field, and samples written back as OpenAI's
chat.completion with vLLM's log-probs."""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
import time
import uuid
from dataclasses import dataclass

from PIL import Image

from ovip.data.images import open_image
from ovip.policy.rollout import Sampled

MAX_QUERY_CHARS = 20_000
# Request fields that would change the samples and that this server does not implement, with the values that
# leave sampling as served (a request with any other value is refused, never silently served otherwise).
UNSERVED = {
    "stop": (None, "", []),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "repetition_penalty": (None, 1),
    "top_k": (None, 0, -1),
    "min_p": (None, 0),
    "logit_bias": (None, {}),
    "best_of": (None, 1),
    "tools": (None, []),
}
DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,(?P<data>.*)", re.DOTALL)


class RequestError(Exception):
    """A request the server cannot serve: answered with `status` and `message` (OpenAI's error body)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class SampleJob:
    """One prompt of a request: n samples of (image, query) from `adapter` (a loaded adapter's name or the
    base model's). temperature 0 decodes greedily."""

    image: Image.Image | None
    query: str
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    adapter: str

    @property
    def key(self) -> tuple:
        """Jobs with equal keys can share one generate call."""
        return self.adapter, self.n, self.temperature, self.top_p, self.max_tokens


def parse_request(body: dict, backend, max_n: int, max_tokens: int, max_pixels: int):
    """(SampleJob, reply options) of a chat-completions body; `RequestError` naming the first bad field.
    `backend` gives the base model's `name` and `check_model(name)` (404 for a model it does not serve)."""
    model = backend.name if body.get("model") is None else body["model"]
    if not isinstance(model, str):
        raise RequestError(400, f"model must be a string, got {model!r}")
    backend.check_model(model)
    if body.get("stream"):
        raise RequestError(400, "stream: streaming is not served")
    for name, neutral in UNSERVED.items():
        if body.get(name) not in neutral:
            raise RequestError(
                400, f"{name}: not served by ovip serve policy (send {neutral[1]!r} or leave it out)"
            )
    image, query = parse_messages(body.get("messages"), max_pixels)
    n = _integer(body, "n", 1, 1, max_n, "--max-n")
    limit = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    tokens = _integer(body, limit, 256, 1, max_tokens, "--max-tokens")
    temperature = _number(body, "temperature", 1.0, 0.0, 100.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise RequestError(400, "top_p must be a number in (0, 1], got 0")
    if temperature == 0 and n != 1:
        raise RequestError(400, f"n must be 1 with temperature 0 (greedy decoding), got {n}")
    seed = _integer(body, "seed", None, 0, 2**63 - 1, None)
    logprobs = body.get("logprobs", False)
    if not isinstance(logprobs, bool) and logprobs is not None:
        raise RequestError(400, f"logprobs must be true or false, got {logprobs!r}")
    if body.get("top_logprobs") not in (None, 0):
        raise RequestError(
            400, "top_logprobs: only the sampled tokens' log-probs are served (top_logprobs 0)"
        )
    as_ids = body.get("return_tokens_as_token_ids", False) is True
    job = SampleJob(
        image,
        query,
        n,
        float(temperature),
        float(top_p),
        tokens,
        secrets.randbelow(2**63) if seed is None else seed,
        model,
    )
    return job, {"logprobs": bool(logprobs), "as_ids": as_ids}


def parse_messages(messages, max_pixels: int) -> tuple[Image.Image | None, str]:
    """(image or None, query) of one user turn: text parts joined, at most one base64 `image_url`."""
    if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict):
        raise RequestError(400, "messages must be a list of exactly one message (one user turn)")
    message = messages[0]
    if message.get("role") != "user":
        raise RequestError(400, f"messages[0].role must be 'user', got {message.get('role')!r}")
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise RequestError(400, "messages[0].content must be a string or a non-empty list of parts")
    texts, images = [], []
    for i, part in enumerate(content):
        where = f"messages[0].content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            images.append(decode_image(url, f"{where}.image_url.url", max_pixels))
        else:
            raise RequestError(400, f"{where} must be a text part {{type: text, text}} or an image_url part")
    query = "".join(texts)
    if not query.strip() or len(query) > MAX_QUERY_CHARS:
        raise RequestError(400, f"messages[0].content needs text of 1 to {MAX_QUERY_CHARS} characters")
    if len(images) > 1:
        raise RequestError(400, f"messages[0].content has {len(images)} images; one is served")
    return (images[0] if images else None), query


def decode_image(url, where: str, max_pixels: int) -> Image.Image:
    """The RGB image of a base64 data URL; `RequestError` naming `where` otherwise."""
    match = DATA_URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        shown = url[:60] if isinstance(url, str) else url
        raise RequestError(
            400, f"{where} must be a base64 data URL (data:image/png;base64,...), got {shown!r}: "
            "the server never fetches a URL or opens a path"
        )  # fmt: skip
    try:
        raw = base64.b64decode(match["data"], validate=True)
        return open_image(io.BytesIO(raw), max_pixels).convert("RGB")
    except (binascii.Error, ValueError, OSError) as e:
        raise RequestError(400, f"{where}: cannot decode the image: {type(e).__name__}: {short(e)}") from None


def completion(samples: list[Sampled], model: str, tokenizer, logprobs: bool, as_ids: bool) -> dict:
    """The chat.completion body of one request's samples (OpenAI's format, vLLM's log-probs)."""
    choices = []
    for index, s in enumerate(samples):
        choice = {
            "index": index,
            "message": {"role": "assistant", "content": s.text},
            "finish_reason": "length" if s.cut else "stop",
            "logprobs": None,
        }
        if logprobs:
            tokens = tokenizer.convert_ids_to_tokens(list(s.token_ids))
            choice["logprobs"] = {
                "content": [
                    {
                        "token": f"token_id:{i}" if as_ids else t,
                        "logprob": lp,
                        "bytes": list(t.encode("utf-8")),
                        "top_logprobs": [],
                    }
                    for i, t, lp in zip(s.token_ids, tokens, s.logprobs, strict=True)
                ]
            }
        choices.append(choice)
    completion_tokens = sum(len(s.token_ids) for s in samples)
    prompt_tokens = samples[0].prompt_tokens if samples else 0
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _integer(body: dict, name: str, default, low: int, high: int, flag: str | None):
    value = body.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        cap = f" ({flag} {high})" if flag else ""
        raise RequestError(400, f"{name} must be an integer in [{low}, {high}]{cap}, got {value!r}")
    return value


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(400, f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def short(error, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."
