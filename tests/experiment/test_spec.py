"""Experiment specs: built-in specs load and name only known cells; bad specs are one-line errors."""

import pytest

from ovip.config import ConfigError
from ovip.experiment.spec import ExperimentSpec, load_spec


@pytest.mark.parametrize("name", ["paper", "paper-long", "smoke", "quickstart"])
def test_builtin_specs_load(name):
    spec = load_spec(name)
    assert spec.name == name and spec.cells and spec.seeds and spec.base_models
    for rows in spec.tables.values():
        assert set(rows) <= set(spec.cells) | {"base"}
    assert spec.claims and all({c.better, c.than} <= set(spec.cells) | {"base"} for c in spec.claims)


def test_paper_spec_covers_the_papers_comparisons():
    spec = load_spec("paper")
    methods = {c.get("train.method", "ovip") for c in spec.cells.values()}
    assert {"sft", "dpo", "mdpo", "dpo-iterative", "dpo-online", "grpo", "ovip", "ovip-offline"} <= methods
    assert spec.base_models == [0, 1, 2] and set(spec.curves.cells) == {"ovip", "grpo", "dpo-online"}
    kinds = {c.get("negatives.kind") for c in spec.cells.values()}
    assert {"crop", "random"} <= kinds
    pairs = {(c.better, c.than) for c in spec.claims}
    assert {
        ("ovip", "dpo-online"),
        ("ovip", "ovip-offline"),
        ("dpo-online", "dpo"),
        ("ovip", "grpo"),
    } <= pairs
    assert {("ovip", "ovip-crop"), ("ovip", "ovip-random"), ("ovip-crop", "ovip-random")} <= pairs
    assert {m for m in spec.cells if m in ("sft", "dpo", "mdpo", "dpo-iterative", "grpo")} <= {
        c.better for c in spec.claims if c.than == "base"
    }


def test_paper_long_compares_per_sample_and_per_update():
    """paper-long: 3 runs a cell over three base models, crop negatives, GRPO at OViP's policy samples and at
    (about) OViP's optimizer steps, and every trained cell against the base."""
    spec = load_spec("paper-long")
    assert len(spec.base_models) * len(spec.seeds) >= 3 and len(spec.base_models) >= 3
    assert spec.cells["ovip-crop"] == {"negatives.kind": "crop"}
    assert spec.cells["grpo-equal-steps"] == {"train.method": "grpo", "train.batch_size": 224}
    pairs = {(c.better, c.than) for c in spec.claims}
    assert {
        ("ovip", "grpo"),
        ("ovip", "grpo-equal-steps"),
        ("ovip", "ovip-offline"),
        ("dpo-online", "dpo"),
    } <= pairs
    assert {(cell, "base") for cell in spec.cells} <= pairs


def test_overrides_of_a_run_end_with_the_base_model_and_the_seed():
    spec = ExperimentSpec(
        "x",
        overrides={"train.seed": 9, "train.max_examples": 5, "world.eval_sizes": {"amber_gen": 3}},
        cells={"a": {"train.method": "sft", "train.skip_invalid": True}},
    )
    args = spec.overrides_for("a", base=2, seed=7)
    assert args == [
        "--train.max_examples",
        "5",
        "--world.eval_sizes",
        "{amber_gen: 3}",
        "--train.method",
        "sft",
        "--train.skip_invalid",
        "true",
        "--world.pretrain.seed",
        "2",
        "--train.seed",
        "7",
    ]


def test_command_line_overrides_keep_nested_world_keys():
    """`--world.pretrain.steps 100` stays one nested key (the recipe's other pretraining keys are kept), and each
    run's overrides give back the tokens; a malformed token is the config's one-line error."""
    from ovip.config import load
    from ovip.experiment.spec import override_map

    tokens = ["--world.pretrain.steps", "100", "--train.lr=1e-4"]
    assert override_map(tokens) == {"world.pretrain.steps": "100", "train.lr": "1e-4"}
    spec = ExperimentSpec("x", overrides=override_map(tokens), cells={"a": {}})
    cfg = load("world", spec.overrides_for("a", base=4, seed=1))
    assert (cfg.world.pretrain.steps, cfg.world.pretrain.seed, cfg.train.lr) == (100, 4, 1e-4)
    with pytest.raises(ConfigError, match="must look like --section.key"):
        override_map(["train.lr", "1"])


def test_claims_are_checked():
    spec = ExperimentSpec(
        "t", cells={"a": {}, "b": {}}, claims=[{"claim": "a wins", "better": "a", "than": "base"}]
    )
    assert spec.claims[0].metrics == ["chair", "cover", "objecthal_chair_r", "partner_rate", "hri"]
    bad = [
        ({"claim": "x", "better": "a", "than": "c"}, "two of the cells"),
        ({"claim": "x", "better": "a", "than": "a"}, "two of the cells"),
        ({"claim": "x", "better": "a"}, "keys must be"),
        ({"claim": "x", "better": "a", "than": "b", "metrics": ["CHAIR"]}, "metrics must be"),
        ("a beats b", "expected a mapping"),
    ]
    for claim, message in bad:
        with pytest.raises(ConfigError, match=message):
            ExperimentSpec("t", cells={"a": {}, "b": {}}, claims=[claim])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ncells: {}\n", "no cells"),
        ("name: x\ncells: {a: {}}\ntables: {t: [a, b]}\n", "unknown cells"),
        ("name: x\ncells: {a: {}}\ncurves: {cells: [z]}\n", "unknown cells"),
        ("name: x\ncells: {a: {}}\nseeds: [one]\n", "seeds"),
        ("name: x\ncells: {a: {}}\nbase_models: [0, 0]\n", "base_models repeats"),
        ("name: x\ncells: {a: {}}\nbase_models: 3\n", "base_models must be a list"),
        ("name: x\ncells: {a: {}}\nbefore_after: b\n", "before_after names unknown"),
        ("name: x\ncells: {base: {}}\n", "'base' is not a cell name"),
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


def test_base_models_need_the_world(tmp_path):
    """Several base models are world pretraining seeds: a recipe with another model is refused in one line before
    anything runs or is deleted."""
    from ovip.experiment.runner import run_experiment

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  path: some/hf-model\n")
    spec = ExperimentSpec("x", recipe=str(recipe), base_models=[0, 1], cells={"a": {}})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.md").write_text("kept")
    with pytest.raises(ConfigError, match="base_models vary the built-in world's pretraining seed"):
        run_experiment(spec, tmp_path / "out", fresh=True)
    assert (tmp_path / "out" / "results.md").read_text() == "kept"
