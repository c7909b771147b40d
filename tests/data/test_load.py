"""Tests for ovip.data.load: format detection and dispatch."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ovip.data.load import detect_format, load_examples


@pytest.mark.parametrize(
    "name, record, expected",
    [
        ("a.jsonl", {"id": "1", "image": "x.png", "query": "q", "reference": "r"}, "jsonl"),
        (
            "b.json",
            {"conversations": [{"from": "human", "value": "q"}], "chosen": {"value": "r"}},
            "sharegpt",
        ),
        ("c.jsonl", {"prompt": [{"role": "user", "content": "q"}], "chosen": "r", "images": []}, "trl"),
        ("d.json", {"question": "q", "chosen": "r", "image": {"bytes": None, "path": "x.png"}}, "rlaif"),
    ],
)
def test_detects_each_format(tmp_path, name, record, expected):
    path = tmp_path / name
    text = json.dumps(record) + "\n" if name.endswith(".jsonl") else json.dumps([record])
    path.write_text(("{broken\n" if name.endswith(".jsonl") else "") + text)  # a bad first line is skipped
    assert detect_format(path) == expected
    examples = load_examples(path)
    assert examples[-1].query == "q" and examples[-1].reference == "r"


def test_parquet_and_explicit_format(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "q", "chosen": "r", "idx": 3}]), path)
    assert [e.id for e in load_examples(path)] == ["3"]
    assert load_examples(path, format="rlaif")[0].reference == "r"


def test_unknown_format_and_missing_file_raise(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{"text": "hello"}]))
    with pytest.raises(ValueError, match="cannot detect"):
        load_examples(path)
    with pytest.raises(ValueError, match="unknown data format"):
        load_examples(path, format="csv")
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "missing.jsonl")
