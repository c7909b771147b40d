"""Config: paper defaults, YAML recipes, dotted overrides, one-line errors that name the key."""

import subprocess
import sys

import pytest

from ovip.config import Config, ConfigError, load, recipe_path, to_dict


def test_paper_defaults():
    c = Config()
    assert (c.rollout.k, c.pairs.delta, c.pairs.tau_pos, c.pairs.tau_neg) == (16, 3.0, 5.0, 5.0)
    assert (c.loss.beta, c.loss.beta1, c.loss.beta2, c.train.batch_size) == (0.1, 0.1, 0.1, 16)
    assert (c.model.lora_r, c.model.lora_alpha, c.judge.temperature) == (256, 512, 0.1)
    assert (c.describer.temperature, c.describer.top_p, c.describer.max_tokens) == (0.1, 0.9, 128)
    assert (c.negatives.height, c.negatives.steps, c.negatives.guidance) == (384, 40, 7.5)
    assert (c.rollout.temperature, c.rollout.top_p, c.model.no_image) == (1.2, 0.8, "drop")


def test_yaml_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("loss:\n  beta: 0.3\ntrain:\n  lr: 2.0e-6\n")
    c = load(recipe, ["--loss.beta", "0.2", "--rollout.k=8", "--train.skip_invalid", "true"])
    assert (c.loss.beta, c.train.lr, c.rollout.k, c.train.skip_invalid) == (0.2, 2e-6, 8, True)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--loss.betta", "0.2"], "unknown key loss.betta (did you mean 'beta'?)"),
        (["--los.beta", "0.2"], "unknown config section 'los' (did you mean 'loss'?)"),
        (["--rollout.k", "many"], "rollout.k: expected int"),
        (["--rollout.k", "1"], "rollout.k: need at least 2 samples"),
        (["--model.no_image", "zero"], "model.no_image: must be drop or blank"),
        (["--judge.kind", "openai"], "judge.base_url: required"),
        # Non-finite values used to pass every `> 0` check and train NaN adapters.
        (["--loss.text_weight", "nan"], "loss.text_weight: must be a finite number"),
        (["--train.lr", "inf"], "train.lr: must be a finite number"),
        (["--loss.beta1", "-inf"], "loss.beta1: must be a finite number"),
        (["--rollout.temperature", "nan"], "rollout.temperature: must be a finite number"),
        (["--judge.timeout", "inf"], "judge.timeout: must be a finite number"),
        (["--describer.top_p", "nan"], "describer.top_p: must be a finite number"),
        (["--pairs.delta", "nan"], "pairs.delta: must be a finite number"),
        # Out of range, each naming its own key.
        (["--loss.image_weight", "-1"], "loss.image_weight: must be >= 0"),
        (["--train.save_every", "-2"], "train.save_every: must be >= 0"),
        (["--train.max_examples", "0"], "train.max_examples: must be > 0"),
        (["--judge.timeout", "-5"], "judge.timeout: must be > 0"),
        (["--describer.timeout", "0"], "describer.timeout: must be > 0"),
        (["--train.micro_batch_size", "0"], "train.micro_batch_size: must be > 0"),
        (["--judge.max_retries", "-1"], "judge.max_retries: must be >= 0"),
        (["--rollout.prompts_per_batch", "0"], "rollout.prompts_per_batch: must be > 0"),
        (["--model.lora_alpha", "0"], "model.lora_alpha: must be > 0"),
        (["--pairs.tau_pos", "11"], "pairs.tau_pos: must be in [0, 10]"),
        (["--train.max_image_pixels", "0"], "train.max_image_pixels: must be > 0"),
        (["--train.batch_size", "true"], "train.batch_size: expected int"),
        (["--rollout.engine", "server"], "rollout.base_url: required when rollout.engine is server"),
        (["--rollout.engine", "vllm"], "rollout.engine: must be local or server, got 'vllm'"),
        (["--rollout.sync_every", "0"], "rollout.sync_every: must be > 0"),
        (["--train.max_staleness", "2"], "train.max_staleness: bounds the overlapped pipeline"),
        (
            ["--train.pipeline", "overlapped", "--train.max_staleness", "0"],
            "train.max_staleness: must be > 0",
        ),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load(None, overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_builtin_recipes_load():
    for name in ("world", "llava-1.5-7b", "llava-1.5-13b", "qwen2.5-vl-3b"):
        load(name)
    with pytest.raises(ConfigError, match="did you mean 'world'"):
        recipe_path("wrld")


def test_cli_reports_a_bad_config_in_one_line():
    out = subprocess.run(
        [sys.executable, "-m", "ovip.cli", "train", "--loss.betta", "0.2"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "ovip: config error: unknown key loss.betta (did you mean 'beta'?)"


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        (
            "judge:\n",
            ["--judge.timeout", "3"],
            "judge: expected a mapping of keys, got None; cannot set --judge.timeout",
        ),
        (
            "judge: 5\n",
            ["--judge.timeout", "3"],
            "judge: expected a mapping of keys, got 5; cannot set --judge.timeout",
        ),
        (
            "world:\n  pretrain: 3\n",
            ["--world.pretrain.steps", "100"],
            "world.pretrain: expected a mapping of keys, got 3; cannot set --world.pretrain.steps",
        ),
        (
            "",
            ["--world.seed", "[1"],
            "--world.seed: '[1' is not a YAML value (expected ',' or ']', but got '<stream end>')",
        ),
    ],
)
def test_an_override_into_a_section_that_is_no_mapping_is_one_line(tmp_path, text, overrides, message):
    """A bare `judge:` plus --judge.timeout was a TypeError traceback, a world value that is not YAML a
    53-line yaml.ParserError one."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "ovip.cli", "train", "--config", str(recipe), *overrides],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stderr) == (2, f"ovip: config error: {message}\n")


def test_a_bare_world_section_takes_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("world:\n")
    world = load(recipe, ["--world.seed", "3", "--world.pretrain.steps", "500"]).world
    assert (world.seed, world.pretrain.steps) == (3, 500)


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "ovip.cli", "--help"], capture_output=True, text=True)
    for cmd in ("quickstart", "train", "eval", "world", "data"):
        assert cmd in out.stdout


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  lr: [1e-6\n", "r.yaml:3: YAML syntax error"),  # the flow sequence is never closed
        ("loss:\n\tbeta: 0.2\n", "r.yaml:2: YAML syntax error"),  # a tab
        ("world: 5\n", "world: expected a mapping of keys, got 5"),
        ("world: [1, 2]\n", "world: expected a mapping of keys"),
        ("- loss\n", "a recipe is a mapping of sections, got list"),
        ("model:\n  path: 123\n", "model.path: expected str, got 123"),
    ],
)
def test_bad_recipe_files_are_one_line_errors(tmp_path, text, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(recipe)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_folder_is_not_a_recipe(tmp_path):
    with pytest.raises(ConfigError, match="is a folder; give a YAML recipe file"):
        load(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "ovip.cli", "train", "--config", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_service_settings():
    from ovip.config import ConfigError, from_dict

    cfg = from_dict(
        {"judge": {"concurrency": 8}}
    )  # the old name of judge.max_concurrency, in older run folders
    assert cfg.judge.max_concurrency == 8
    with pytest.raises(ConfigError, match="negatives.base_url: required when negatives.kind is http"):
        from_dict({"negatives": {"kind": "http"}})
    with pytest.raises(ConfigError, match="negatives.max_concurrency"):
        from_dict({"negatives": {"max_concurrency": 0}})
    assert from_dict({}).train.pipeline == "concurrent"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--world.small_pp", "0.1"], "unknown key world.small_pp (did you mean 'small_p'?)"),
        (["--world.pretrain.stepz", "3"], "unknown key world.pretrain.stepz (did you mean 'steps'?)"),
        (["--world.small_p", "3"], "world.small_p: must be a probability in [0, 1], got 3"),
        (["--world.model", "3"], "world.model: expected a mapping of keys, got 3"),
    ],
)
def test_world_section_is_checked_against_the_typed_world_config_at_load(override, message):
    """Before any model loads, like every other section (the world used to fail late, with a traceback)."""
    with pytest.raises(ConfigError) as e:
        load("world", override)
    assert str(e.value) == message


def test_report_to_and_the_old_tensorboard_key():
    assert load(None, ["--train.report_to", "tensorboard,wandb"]).train.report_to == ["tensorboard", "wandb"]
    assert load(None, ["--train.report_to", "none"]).train.report_to == []
    with pytest.raises(ConfigError, match="train.report_to: unknown tracker 'mlflow'"):
        load(None, ["--train.report_to", "mlflow"])
    # train.tensorboard (a bool, in older run folders' config.yaml) still reads, as report_to
    assert load(None, ["--train.tensorboard", "true", "--train.report_to", "wandb"]).train.report_to == [
        "wandb",
        "tensorboard",
    ]
    assert load(None, ["--train.tensorboard", "false"]).train.report_to == []
    assert "tensorboard" not in to_dict(load(None, ["--train.tensorboard", "true"]))["train"]
    with pytest.raises(ConfigError, match="train.tensorboard: expected bool"):
        load(None, ["--train.tensorboard", "maybe"])
