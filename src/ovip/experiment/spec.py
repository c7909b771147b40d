"""An experiment spec: which cells (a method or an ablation = a set of config overrides), on how many base
models and training seeds, which tables, curves and claims to write. YAML, by path or built-in name (`paper`,
`paper-long`, `smoke`, `quickstart`):

    name: paper
    recipe: world                     # the recipe every cell starts from
    overrides: {train.max_examples: 1500}            # applied to every cell
    base_models: [0, 1, 2]            # world.pretrain.seed of each base model (each one pretrained and cached)
    seeds: [0]                        # training seeds (train.seed), on every base model
    cells:                            # name -> overrides; `base` (the untrained model) is always evaluated
      ovip: {}
      dpo-online: {train.method: dpo-online}
    tables:                           # title -> cells (rows), in order
      "Table 2 analogue": [sft, dpo-online, ovip]
    before_after: ovip                # optional: every metric of one cell beside the base and the oracle
    curves: {cells: [ovip, grpo, dpo-online], points: 4}   # evaluations along training, first run only
    analyses: {mass_shift: true, prompts: 64, k: 16}       # opt-in Fig. 5 per run (loads the model)
    claims:                           # each: "`better` is better than `than`", tested per metric
      - {claim: "the image loss adds (Table 3)", better: ovip, than: dpo-online}
      - {claim: "OViP hallucinates less than the base", better: ovip, than: base, metrics: [chair, hri]}
    resamples: 2000                   # of the paired bootstrap (`ovip.eval.paired`)

Every cell runs once per base model x training seed. A claim's verdict is computed, never written: the paired
difference over the same items, base models and seeds, with its 95% bootstrap interval, for each of its
metrics (`PAIRED`: CHAIR, Cover, ObjHal CHAIR_r, partner rate, HRI by default; `ovip.experiment.paired`).
The cheap analyses (`ovip analyze dynamics` and `negatives`) run for every run.
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


# The metrics a claim is tested on (names of `ovip.world.counts.METRICS`, and `hri`: Eq. 7 against the oracle).
PAIRED = ("chair", "cover", "objecthal_chair_r", "partner_rate", "hri")


@dataclass
class Claim:
    """ "`better` is better than `than`" (cells, or `base`), tested on each of `metrics` in its better direction."""

    claim: str
    better: str
    than: str
    metrics: list[str] = field(default_factory=lambda: list(PAIRED))


@dataclass
class ExperimentSpec:
    name: str
    recipe: str = "world"
    overrides: dict = field(default_factory=dict)
    base_models: list[int] = field(default_factory=lambda: [0])
    seeds: list[int] = field(default_factory=lambda: [0])
    cells: dict[str, dict] = field(default_factory=dict)
    tables: dict[str, list[str]] = field(default_factory=dict)
    before_after: str | None = None
    curves: Curves = field(default_factory=Curves)
    analyses: Analyses = field(default_factory=Analyses)
    claims: list[Claim] = field(default_factory=list)
    resamples: int = 2000

    def __post_init__(self):
        if not self.cells:
            raise ConfigError(f"experiment {self.name!r}: no cells")
        reserved = sorted({"base", "oracle"} & set(self.cells))
        if reserved:
            raise ConfigError(
                f"experiment {self.name!r}: {reserved[0]!r} is not a cell name (it is a folder of its own)"
            )
        for key in ("seeds", "base_models"):
            values = getattr(self, key)
            if not isinstance(values, list) or not values or any(type(s) is not int for s in values):
                raise ConfigError(
                    f"experiment {self.name!r}: {key} must be a list of integers, got {values!r}"
                )
            if len(set(values)) != len(values):
                raise ConfigError(f"experiment {self.name!r}: {key} repeats a value: {values!r}")
        if type(self.resamples) is not int or self.resamples < 100:
            raise ConfigError(f"experiment {self.name!r}: resamples must be an integer >= 100")
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
        if self.before_after is not None and self.before_after not in self.cells:
            raise ConfigError(
                f"experiment {self.name!r}: before_after names unknown cell {self.before_after!r}"
            )
        self.claims = [self._claim(i, c) for i, c in enumerate(self.claims or [])]

    def _claim(self, index: int, claim) -> Claim:
        where = f"experiment {self.name!r}: claims[{index}]"
        if isinstance(claim, Claim):
            claim = vars(claim)
        if not isinstance(claim, dict):
            raise ConfigError(f"{where}: expected a mapping with claim, better, than, got {claim!r}")
        fields = set(Claim.__dataclass_fields__)
        if set(claim) - fields or not {"claim", "better", "than"} <= set(claim):
            raise ConfigError(f"{where}: keys must be claim, better, than [, metrics]; got {sorted(claim)}")
        out = Claim(**claim)
        unknown = [c for c in (out.better, out.than) if c not in self.cells and c != "base"]
        if unknown or out.better == out.than:
            raise ConfigError(
                f"{where}: better and than must be two of the cells or base, got {unknown or out.better!r}"
            )
        bad = [m for m in out.metrics if m not in PAIRED] if isinstance(out.metrics, list) else out.metrics
        if bad or not out.metrics:
            raise ConfigError(f"{where}: metrics must be a list of {', '.join(PAIRED)}; got {bad!r}")
        return out

    def overrides_for(self, cell: str, base: int, seed: int) -> list[str]:
        """Dotted `--key value` overrides of one run: the spec's, the cell's, then the base model (the world's
        pretraining seed) and the training seed."""
        merged = {**self.overrides, **self.cells[cell]}
        for key in ("world.pretrain.seed", "train.seed"):  # the run's own, last
            merged.pop(key, None)
        merged.update({"world.pretrain.seed": base, "train.seed": seed})
        return [tok for key, value in merged.items() for tok in (f"--{key}", _text(value))]

    def runs(self) -> list[tuple[str, int, int]]:
        """(cell, base model, training seed) of every run, in the order they are run."""
        return [(c, b, s) for c in self.cells for b in self.base_models for s in self.seeds]


def override_map(tokens: list[str]) -> dict[str, str]:
    """Command-line overrides (`--train.lr 1e-4`, `--world.pretrain.steps=100`) as spec overrides, key by
    key: each run's `overrides_for` gives back the same tokens (a nested world key stays nested, so it changes
    that key and keeps the recipe's others). A malformed token is `apply_overrides`' one-line error."""
    from ovip.config import apply_overrides

    apply_overrides({}, tokens)
    out, it = {}, iter(tokens)
    for token in it:
        key, _, value = token[2:].partition("=")
        out[key] = value if "=" in token else next(it)
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import yaml

        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def load_spec(name: str | Path) -> ExperimentSpec:
    """A spec file, or the name of a built-in spec (`paper`, `paper-long`, `smoke`, `quickstart`)."""
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
