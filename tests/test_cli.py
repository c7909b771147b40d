"""`ovip` refuses a missing model folder and a CUDA device it does not have in one line (exit code 2),
before it loads data or weights; the line names the key to change."""

import json

import pytest
import torch

from ovip.cli import main


@pytest.fixture
def tiny_data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"id": "a", "image": "x.png", "query": "q", "reference": "r"}) + "\n")
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--model.path", "{missing}", "--train.data", "{data}"],
        ["eval", "amber-gen", "--model", "{missing}", "--data", "{tmp}", "--output", "{tmp}/out"],
        ["data", "check", "{data}", "--model", "{missing}"],
    ],
    ids=["train", "eval", "data-check"],
)
def test_missing_model_folder(command, tmp_path, tiny_data, capsys):
    amber = tmp_path / "amber"  # eval reads its questions before it loads the model
    amber.mkdir()
    (amber / "query_generative.json").write_text(json.dumps([{"id": 1, "image": "a.jpg", "query": "q"}]))
    (amber / "images").mkdir()
    (amber / "images" / "a.jpg").write_bytes(b"")
    values = {"missing": str(tmp_path / "nonexistent"), "data": str(tiny_data), "tmp": str(amber)}
    assert main([part.format(**values) for part in command]) == 2
    err = _one_line_error(capsys)
    assert (
        err == f"ovip: error: model {tmp_path / 'nonexistent'}: no such folder "
        "(expected a Hugging Face model folder or hub id)"
    )


@pytest.mark.parametrize(
    "overrides, key",
    [
        ([], "model.device"),
        (["--model.device", "cpu"], "negatives.device"),
    ],
)
def test_cuda_recipe_without_cuda_names_the_key(overrides, key, tiny_data, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--config", "qwen2.5-vl-3b", "--train.data", str(tiny_data), *overrides]) == 2
    err = _one_line_error(capsys)
    assert err == (
        f"ovip: config error: {key}: 'cuda' but CUDA is not available on this machine; "
        f"set --{key} cpu (or edit {key} in the recipe)"
    )


def test_eval_with_a_cuda_recipe_without_cuda(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (
        main(
            [
                "eval",
                "world",
                "--config",
                "llava-1.5-7b",
                "--model",
                "world",
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert _one_line_error(capsys).startswith(
        "ovip: config error: model.device: 'cuda' but CUDA is not available"
    )
