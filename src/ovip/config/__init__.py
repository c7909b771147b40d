"""Configuration: one dataclass per concern (`sections`), read from YAML recipes and dotted overrides by one
typed parser (`parse`).

Defaults are the paper's (Appendix B.2) and, where the paper is silent, the authors' released code. YAML
recipes set values only; command-line overrides use dotted keys (`--loss.beta 0.2`, `--eval.judge.model M`).
An unknown key or a bad value is a one-line `ConfigError` naming the key and, for typos, the closest valid key.
"""

from ovip.config.parse import (
    RECIPES,
    RENAMED,
    apply_overrides,
    check_device,
    from_dict,
    load,
    read_yaml,
    recipe_path,
    to_dict,
)
from ovip.config.sections import (
    Config,
    DescriberConfig,
    EndpointConfig,
    EvalConfig,
    EvalJudgeConfig,
    JudgeConfig,
    LossConfig,
    ModelConfig,
    NegativesConfig,
    PairsConfig,
    RolloutConfig,
    TrainConfig,
    choices,
    registry,
)
from ovip.errors import ConfigError

__all__ = [
    "RECIPES", "RENAMED", "Config", "ConfigError", "DescriberConfig", "EndpointConfig", "EvalConfig",
    "EvalJudgeConfig", "JudgeConfig", "LossConfig", "ModelConfig", "NegativesConfig", "PairsConfig",
    "RolloutConfig", "TrainConfig", "apply_overrides", "check_device", "choices", "from_dict", "load",
    "read_yaml", "recipe_path", "registry", "to_dict",
]  # fmt: skip
