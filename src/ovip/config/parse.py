"""Reading a config: YAML recipes (a path or a built-in name), dotted command-line overrides, typed fields.

One parser for every section, nested ones included (`world.pretrain`, `eval.judge`): each value is turned into
its field's annotated type (`typing.get_type_hints`): int, float, bool, str, `X | None`, a `Literal` of
choices, lists, mappings, tuples and nested dataclasses. Command-line values arrive as text: for a field that
is not text they are read as YAML first (`--world.eval_sizes '{amber_gen: 8}'`). An unknown key, a bad value
or a bad type is a one-line `ConfigError` that names the key and, for a typo, the closest valid key or choice.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import types
import typing
from pathlib import Path
from typing import Literal, Union

import yaml

from ovip.config.sections import Config, choices
from ovip.errors import ConfigError

# Keys renamed since a run folder's config.yaml may have been written: (section, old name) -> new name.
RENAMED = {("judge", "concurrency"): "max_concurrency"}
RECIPES = Path(__file__).resolve().parent.parent / "configs"
_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _suggest(key: str, options) -> str:
    close = difflib.get_close_matches(key, [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _name(hint) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _coerce(key: str, value, hint):
    """`value` as the type `hint` of the field `key`; a mismatch is a ConfigError naming the key."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):  # X | None
        if value is None or isinstance(value, str) and value.lower() in ("none", "null"):
            return None
        return _coerce(key, value, next(a for a in args if a is not type(None)))
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected str, got {value!r}")
        return value
    if origin is list and isinstance(value, str):  # --train.report_to tensorboard,wandb
        return [v for v in value.split(",") if v]
    if isinstance(value, str) and origin is not Literal:
        value = _yaml_value(key, value)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be {choices(hint)}, got {value!r}{_suggest(str(value), args)}")
        return value
    try:
        if isinstance(value, bool) and hint is not bool:
            raise ValueError  # YAML's `yes` is not a number of steps
        if hint is bool:
            if isinstance(value, int) and str(value) in _BOOLS:
                return _BOOLS[str(value)]
            if not isinstance(value, bool):
                raise ValueError
            return value
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint is float:  # an integer stays one: it is exact, and its message reads as written
            return value if isinstance(value, int) else float(value)
        if origin in (list, tuple, dict) and not isinstance(value, (list, tuple, dict)):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {_name(hint)}, got {value!r}") from None
    return value


def _yaml_value(key: str, text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        what = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError(f"--{key}: {text!r} is not a YAML value ({what})") from None


def build(cls, data, prefix: str):
    """The dataclass `cls` (a section, or one nested in it) from a mapping, every value coerced to its field's
    type; its own validation runs in its `__post_init__`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        key = RENAMED.get((prefix, key), key)
        if key not in hints:
            raise ConfigError(f"unknown key {prefix}.{key}{_suggest(key, hints)}")
        kwargs[key] = _coerce(f"{prefix}.{key}", value, hints[key])
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix}: {e}") from None


def from_dict(data: dict) -> Config:
    """Build a Config from a nested dict; unknown keys and bad values raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping, got {type(data).__name__}")
    sections = typing.get_type_hints(Config)
    built = {}
    for name, value in data.items():
        if name not in sections:
            raise ConfigError(f"unknown config section {name!r}{_suggest(name, sections)}")
        if name == "world" and value is None:  # a bare `world:` is the default world
            value = {}
        if name == "train" and isinstance(value, dict) and "tensorboard" in value:
            value = _migrate_tensorboard(value)
        built[name] = build(sections[name], value, name)
    return Config(**built)


def _migrate_tensorboard(train: dict) -> dict:
    """`train.tensorboard` (a bool) became `train.report_to` (a list, as TRL's). Older run folders hold it in
    config.yaml, so it still reads: true adds `tensorboard` to report_to, false is the default and adds nothing."""
    train = dict(train)
    if _coerce("train.tensorboard", train.pop("tensorboard"), bool):
        current = _coerce("train.report_to", train.get("report_to", []), list[str])
        train["report_to"] = current + ["tensorboard"] * ("tensorboard" not in current)
        logging.getLogger(__name__).warning(
            "train.tensorboard is deprecated: use train.report_to tensorboard"
        )
    return train


def to_dict(config) -> dict:
    """The config as plain YAML-safe data (tuples as lists), as run folders record it in config.yaml."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `--section.key value` pairs (already split; `--eval.judge.model M` for a nested key) to a nested
    dict. Values stay text: the parser reads them as their field's type."""
    out = copy.deepcopy(data)
    it = iter(overrides)
    for token in it:
        if not token.startswith("--") or "." not in token:
            raise ConfigError(f"override {token!r} must look like --section.key VALUE")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        else:
            value = next(it, None)
            if value is None:
                raise ConfigError(f"override --{key} has no value")
        section, *parents, last = key.split(".")
        if section == "world" and out.get("world") is None:  # a bare `world:` is an empty world section
            out["world"] = {}
        node, where = out.setdefault(section, {}), section
        for part in parents:
            _mapping(node, where, key)
            node, where = node.setdefault(part, {}), f"{where}.{part}"
        _mapping(node, where, key)
        node[last] = value
    return out


def _mapping(node, where: str, key: str) -> None:
    """A section (or a nested key) that an override sets a key in must be a mapping."""
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {node!r}; cannot set --{key}")


def recipe_path(name: str | Path) -> Path:
    """A recipe file: a path, or the name of a built-in recipe (`world`, `llava-1.5-7b`, ...)."""
    path = Path(name)
    if path.is_dir():
        raise ConfigError(f"--config {str(name)!r} is a folder; give a YAML recipe file")
    if path.exists():
        return path
    builtin = RECIPES / f"{name}.yaml"
    if builtin.exists():
        return builtin
    known = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    raise ConfigError(
        f"no recipe file {str(name)!r} and no built-in recipe of that name{_suggest(str(name), known)}"
    )


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML recipe (a path or a built-in name; none: the defaults) and apply dotted overrides."""
    data = {}
    if path is not None:
        data = read_yaml(recipe_path(path))
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return from_dict(apply_overrides(data, overrides or []))


def read_yaml(path: Path):
    """A YAML file's content ({} when empty); a syntax error is one line with the file and line number."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError(f"{where}: YAML syntax error: {what}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None


def check_device(device: str, key: str) -> None:
    """A CUDA device asked for on a machine without CUDA is a one-line ConfigError naming `key`.

    Checked where the device is used (building the policy, the diffusion pipeline, evaluation), not in
    `__post_init__`, so that a GPU recipe can still be read, printed and tested on a CPU machine.
    """
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"{key}: {device!r} but CUDA is not available on this machine; "
            f"set --{key} cpu (or edit {key} in the recipe)"
        )
