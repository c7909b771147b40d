"""An experiment spec: which cells (a method or an ablation = a set of config overrides), how many seeds, which
tables and curves to write. YAML, by path or built-in name (`paper`, `smoke`):

    name: paper
    recipe: world                     # the recipe every cell starts from
    overrides: {train.max_examples: 1500}            # applied to every cell
    seeds: [0, 1, 2]
    cells:                            # name -> overrides; `base` (the untrained model) is always evaluated
      ovip: {}
      dpo-online: {train.method: dpo-online}
    tables:                           # title -> cells (rows), in order
      "Table 2 analogue": [sft, dpo-online, ovip]
    curves: {cells: [ovip, grpo, dpo-online], points: 4}   # evaluations along training, first seed only
    analyses: {mass_shift: true, prompts: 64, k: 16}       # opt-in Fig. 5 per run (loads the model)

The cheap analyses (`ovip analyze dynamics` and `negatives`) run for every cell and seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ovip.config import read_yaml
from ovip.errors import ConfigError

SPECS = Path(__file__).resolve().parent.parent / "configs" / "experiments"


@dataclass
class Curves:
    cells: list[str] = field(default_factory=list)
    points: int = 4  # evaluations along training (checkpoints spread evenly), plus the final model


@dataclass
class Analyses:
    mass_shift: bool = False  # Fig. 5 per run: samples the base model and scores with both (minutes each)
    prompts: int = 64  # mass shift: preference prompts
    k: int = 16  # mass shift: base-model samples per prompt


@dataclass
class ExperimentSpec:
    name: str
    recipe: str = "world"
    overrides: dict = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    cells: dict[str, dict] = field(default_factory=dict)
    tables: dict[str, list[str]] = field(default_factory=dict)
    curves: Curves = field(default_factory=Curves)
    analyses: Analyses = field(default_factory=Analyses)

    def __post_init__(self):
        if not self.cells:
            raise ConfigError(f"experiment {self.name!r}: no cells")
        if not self.seeds or any(not isinstance(s, int) for s in self.seeds):
            raise ConfigError(
                f"experiment {self.name!r}: seeds must be a list of integers, got {self.seeds!r}"
            )
        if isinstance(self.curves, dict):
            self.curves = Curves(**self.curves)
        if isinstance(self.analyses, dict):
            unknown = set(self.analyses) - set(Analyses.__dataclass_fields__)
            if unknown:
                raise ConfigError(f"experiment {self.name!r}: unknown analyses keys {sorted(unknown)}")
            self.analyses = Analyses(**self.analyses)
        known = set(self.cells) | {"base"}
        for title, rows in self.tables.items():
            unknown = [r for r in rows if r not in known]
            if unknown:
                raise ConfigError(f"experiment {self.name!r}: table {title!r} names unknown cells {unknown}")
        unknown = [c for c in self.curves.cells if c not in self.cells]
        if unknown:
            raise ConfigError(f"experiment {self.name!r}: curves name unknown cells {unknown}")

    def overrides_for(self, cell: str, seed: int) -> list[str]:
        """Dotted `--key value` overrides of one run: the spec's, the cell's, then the seed."""
        merged = {**self.overrides, **self.cells[cell], "train.seed": seed}
        return [tok for key, value in merged.items() for tok in (f"--{key}", _text(value))]


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import yaml

        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def load_spec(name: str | Path) -> ExperimentSpec:
    """A spec file, or the name of a built-in spec (`paper`, `smoke`)."""
    path = Path(name)
    if not path.exists():
        path = SPECS / f"{name}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in SPECS.glob("*.yaml"))
            raise ConfigError(f"no experiment spec {str(name)!r}; built-in: {', '.join(known)}")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an experiment spec is a mapping")
    allowed = set(ExperimentSpec.__dataclass_fields__)
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(allowed)}")
    data.setdefault("name", path.stem)
    return ExperimentSpec(**data)
