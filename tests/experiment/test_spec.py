"""Experiment specs: built-in specs load and name only known cells; bad specs are one-line errors."""

import pytest

from ovip.config import ConfigError
from ovip.experiment.spec import ExperimentSpec, load_spec


@pytest.mark.parametrize("name", ["paper", "paper-long", "smoke"])
def test_builtin_specs_load(name):
    spec = load_spec(name)
    assert spec.name == name and spec.cells and spec.seeds
    for rows in spec.tables.values():
        assert set(rows) <= set(spec.cells) | {"base"}


def test_paper_spec_covers_the_papers_comparisons():
    spec = load_spec("paper")
    methods = {c.get("train.method", "ovip") for c in spec.cells.values()}
    assert {"sft", "dpo", "mdpo", "dpo-iterative", "dpo-online", "grpo", "ovip", "ovip-offline"} <= methods
    assert spec.seeds == [0, 1, 2] and set(spec.curves.cells) == {"ovip", "grpo", "dpo-online"}
    kinds = {c.get("negatives.kind") for c in spec.cells.values()}
    assert {"crop", "random"} <= kinds


def test_overrides_of_a_run_end_with_the_seed():
    spec = ExperimentSpec(
        "x",
        overrides={"train.max_examples": 5, "world.eval_sizes": {"amber_gen": 3}},
        cells={"a": {"train.method": "sft", "train.skip_invalid": True}},
    )
    args = spec.overrides_for("a", 7)
    assert args == [
        "--train.max_examples",
        "5",
        "--world.eval_sizes",
        "{amber_gen: 3}",
        "--train.method",
        "sft",
        "--train.skip_invalid",
        "true",
        "--train.seed",
        "7",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ncells: {}\n", "no cells"),
        ("name: x\ncells: {a: {}}\ntables: {t: [a, b]}\n", "unknown cells"),
        ("name: x\ncells: {a: {}}\ncurves: {cells: [z]}\n", "unknown cells"),
        ("name: x\ncells: {a: {}}\nseeds: [one]\n", "seeds"),
        ("name: x\ncells: {a: {}}\nmethods: [a]\n", "unknown keys"),
        ("name: x\ncells: [a\n", "YAML syntax error"),
    ],
)
def test_bad_specs_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_spec(path)


def test_unknown_builtin_names_the_known_ones():
    with pytest.raises(ConfigError, match="paper"):
        load_spec("papper")


def test_analyses_keys_are_checked():
    spec = ExperimentSpec("t", cells={"a": {}}, analyses={"mass_shift": True, "k": 4})
    assert spec.analyses.mass_shift and spec.analyses.k == 4 and spec.analyses.prompts == 64
    assert not ExperimentSpec("t", cells={"a": {}}).analyses.mass_shift  # opt-in
    with pytest.raises(ConfigError, match="mass_shfit"):
        ExperimentSpec("t", cells={"a": {}}, analyses={"mass_shfit": True})
