"""Preflight: one small request to each configured service before a run loads its model.

A judge URL that points at a dead port, a key the server refuses, a model name it does not serve, or a
diffusion model that does not load would otherwise surface as a run of counted failures and zero optimizer
steps. Each replica of each remote service gets one request of the kind the loop will send (the paper's judge
prompt, Table 9; a description prompt, Table 10; one image at the configured size with one diffusion step; the
list of served models of a policy server, which must hold the base model, `rollout.model`),
with no retry and a deadline of `train.preflight_timeout` seconds (or the service's own `timeout` when
shorter), so a server that accepts connections and never answers stops the run within that deadline; any
failure is a `PreflightError` whose message is one line naming the service, the URL and the cause. In-process diffusion (`negatives.kind diffusion`) is loaded here, so a load error stops the run
before it starts.
"""

from __future__ import annotations

import os
import re

import httpx

from ovip.config import Config
from ovip.feedback.prompts import description_prompt, judge_prompt
from ovip.feedback.registry import DESCRIBERS, JUDGES
from ovip.negatives.registry import SOURCES
from ovip.services.chat import completion_text
from ovip.services.client import PLACEHOLDER_API_KEY, CallLimits, Outcome, ServiceClient, split_urls
from ovip.services.policy_client import model_ids
from ovip.train.engines import SAMPLERS
from ovip.train.methods import objective_of

PROBE_QUERY = "Is there a ball?"  # the question of the probe prompts


class PreflightError(ValueError):
    """A configured service is not usable; the message is one line: service, URL, cause."""


def preflight(cfg: Config) -> None:
    """Check every remote service of `cfg` (judge, describer, images); raise `PreflightError` at the first
    one that does not answer as the loop needs. Services the method does not call are not checked (SFT calls
    none; the methods without negative images call neither the describer nor the image service)."""
    method = objective_of(cfg)
    if JUDGES[cfg.judge.kind].remote and method.judged:
        body = {
            "model": cfg.judge.model,
            "temperature": cfg.judge.temperature,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": judge_prompt(PROBE_QUERY, "yes.", "yes.")}],
        }
        _check(
            "judge",
            cfg.judge.base_url,
            cfg.judge.api_key_env,
            min(cfg.judge.timeout, cfg.train.preflight_timeout),
            cfg.judge.model,
            "/chat/completions",
            body,
            completion_text,
        )
    d = cfg.describer
    if DESCRIBERS[d.kind].remote and method.negatives:
        prompt = description_prompt(PROBE_QUERY, "yes, a red ball.", "no.")
        body = {
            "model": d.model,
            "temperature": d.temperature,
            "top_p": d.top_p,
            "max_tokens": d.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        _check(
            "describer",
            d.base_url or cfg.judge.base_url,
            d.api_key_env,
            min(d.timeout, cfg.train.preflight_timeout),
            d.model,
            "/chat/completions",
            body,
            completion_text,
        )
    r = cfg.rollout
    if SAMPLERS[r.engine].pushes_adapter and method.judged:
        _check_served(
            r.base_url, r.api_key_env, min(r.timeout, cfg.train.preflight_timeout), r.model or cfg.model.path
        )
    n = cfg.negatives
    if SOURCES[n.kind].remote and method.negatives:
        from ovip.negatives.http import HttpImageSynthesizer

        client = HttpImageSynthesizer("http://unused", n.model, height=n.height, width=n.width)
        body = client.request("a red ball .", seed=0, steps=1)
        _check(
            "images",
            n.base_url,
            n.api_key_env,
            min(n.timeout, cfg.train.preflight_timeout),
            n.model,
            "/images/generations",
            body,
            client.decode,
        )


def check_synthesizer(synthesizer) -> None:
    """An in-process diffusers pipeline must load now; `PreflightError` with its load error otherwise."""
    if hasattr(synthesizer, "pipeline") and hasattr(synthesizer, "_load_error"):
        if synthesizer.pipeline is None:
            raise PreflightError(
                f"negative images (diffusion, {synthesizer.model}): load error: "
                f"{_one_line(synthesizer._load_error or 'no pipeline')}"
            )


def _check(
    service: str,
    base_urls,
    api_key_env: str,
    timeout: float,
    model: str,
    path: str,
    body: dict,
    parse,
) -> None:
    for url in split_urls(base_urls):
        limits = CallLimits(timeout=timeout, max_retries=0, max_reply_bytes=32_000_000)  # one attempt
        client = ServiceClient(url, api_key_env, limits)
        try:
            outcome = client.call(path, body, parse)
        finally:
            client.close()
        if not outcome.ok:
            raise PreflightError(f"{service} at {url}: {cause(outcome, url, model, api_key_env)}")


def _check_served(base_urls, api_key_env: str, timeout: float, model: str) -> None:
    """Every replica of the policy servers answers `GET /models` and lists the base model `model`."""
    for url in split_urls(base_urls):
        client = ServiceClient(url, api_key_env, CallLimits(timeout=timeout, max_retries=0))
        try:
            outcome = client.call("/models", None, model_ids, method="GET")
        finally:
            client.close()
        if not outcome.ok:
            raise PreflightError(
                f"policy server (rollout) at {url}: {cause(outcome, url, model, api_key_env)}"
            )
        if model not in outcome.value:
            raise PreflightError(
                f"policy server (rollout) at {url} serves {', '.join(map(repr, outcome.value[:10]))}, not the base "
                f"model {model!r} (set rollout.model to its name there, or serve the policy's base model)"
            )


def cause(outcome: Outcome, url: str, model: str, api_key_env: str) -> str:
    """What went wrong, in words a user can act on."""
    error = re.sub(r" \(\d+ attempts?, [\d.]+s, [^)]*\)$", "", outcome.error or "")
    if "ConnectError" in error or "refused" in error.lower():
        return f"connection refused: is the server running? ({_one_line(error)})"
    if error.startswith("HTTP 401") or error.startswith("HTTP 403"):
        return f"{error[5:8]} unauthorized: the server wants another key; set ${api_key_env} ({_one_line(error)})"
    if error.startswith("HTTP 404"):
        served = _served_models(url, api_key_env)
        extra = f"; it serves {', '.join(served)}" if served else ""
        return (
            f"404 not found: model {model!r} or the endpoint is not served there{extra} ({_one_line(error)})"
        )
    if error.startswith("timeout"):
        return f"no reply: {_one_line(error)} (one attempt; a slow server needs a longer train.preflight_timeout)"
    return _one_line(error)


def _served_models(url: str, api_key_env: str) -> list[str]:
    try:
        key = os.environ.get(api_key_env) or PLACEHOLDER_API_KEY
        data = httpx.get(url + "/models", headers={"Authorization": f"Bearer {key}"}, timeout=5.0).json()[
            "data"
        ]
        return [str(m["id"]) for m in data][:10]
    except Exception:
        return []


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
