"""The judges (G_r) and describers (G_diff) a config can name (`judge.kind`, `describer.kind`).

    world    the built-in world's rule-based judge and describer (`ovip.world.judge`), in-process
    openai   any OpenAI-compatible chat endpoint (vLLM, SGLang, OpenAI, `ovip serve judge`) with the paper's
             prompts (Appendix I), remote: the preflight probes it before a run starts

A new kind is one module and one line here (and its name in `ovip.config.sections.JudgeKind`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ovip.config import Config, registry
from ovip.config.sections import DescriberKind, JudgeKind, RemoteJudgeKind
from ovip.errors import ConfigError
from ovip.records import Describer, Judge


@dataclass(frozen=True)
class Kind:
    build: Callable[[Config], object]
    remote: bool = False  # an HTTP service: the preflight probes it


def _world_judge(cfg: Config) -> Judge:
    from ovip.world.judge import WorldJudge

    return WorldJudge()


def _openai_judge(cfg: Config) -> Judge:
    from ovip.feedback.openai_judge import OpenAIJudge

    j = cfg.judge
    return OpenAIJudge(
        base_url=j.base_url, model=j.model, api_key_env=j.api_key_env, temperature=j.temperature,
        timeout=j.timeout, max_retries=j.max_retries, concurrency=j.max_concurrency,
    )  # fmt: skip


def _world_describer(cfg: Config) -> Describer:
    from ovip.world.judge import WorldDescriber

    return WorldDescriber()


def _openai_describer(cfg: Config) -> Describer:
    from ovip.feedback.openai_describer import OpenAIDescriber

    d = cfg.describer
    base_url = d.base_url or cfg.judge.base_url
    if not base_url:
        raise ConfigError("describer.base_url: required when describer.kind is openai")
    return OpenAIDescriber(
        base_url=base_url, model=d.model, api_key_env=d.api_key_env, temperature=d.temperature, top_p=d.top_p,
        max_tokens=d.max_tokens, timeout=d.timeout, max_retries=d.max_retries, max_concurrency=d.max_concurrency,
    )  # fmt: skip


JUDGES: dict[str, Kind] = registry(
    JudgeKind, {"world": Kind(_world_judge), "openai": Kind(_openai_judge, True)}, remote=RemoteJudgeKind
)
DESCRIBERS: dict[str, Kind] = registry(
    DescriberKind, {"world": Kind(_world_describer), "openai": Kind(_openai_describer, True)}
)


def build_judge(cfg: Config) -> Judge:
    return JUDGES[cfg.judge.kind].build(cfg)


def build_describer(cfg: Config) -> Describer:
    return DESCRIBERS[cfg.describer.kind].build(cfg)
