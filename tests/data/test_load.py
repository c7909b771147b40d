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


def test_a_line_that_is_not_utf8_is_a_bad_record_named_by_line(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps({"id": "a", "image": "x.png", "query": "q", "reference": "r"}).encode()
    path.write_bytes(
        b"\xef\xbb\xbf" + good + b"\n" + b'{"id": "b", "query": "caf\xe9"}\n' + good.replace(b'"a"', b'"c"')
    )
    a, bad, c = load_examples(path)
    assert (a.id, a.source, c.id, c.source) == ("a", "d.jsonl:1", "c", "d.jsonl:3")  # a UTF-8 BOM is fine
    assert bad.source == "d.jsonl:2" and "line 2 is not UTF-8 text" in bad.meta["load_error"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jsonl", b"", "empty.jsonl: no readable record"),
        ("blank.jsonl", b"\n  \n", "blank.jsonl: no readable record"),
        ("empty.json", b"", "empty.json: empty file"),
        ("latin.json", b'[\n{"query": "caf\xe9"}]', "latin.json:2: not UTF-8 text"),
        ("broken.json", b'[\n{"query": "q",\n "reference": }]', "broken.json:3: invalid JSON"),
        ("bad.parquet", b"PAR1 not really", "bad.parquet: cannot read parquet"),
    ],
)
def test_an_unreadable_file_is_one_error_naming_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_examples(tmp_path / name, format="auto" if "parquet" not in name else "rlaif")
    assert message in str(err.value) and "\n" not in str(err.value)
    if name.endswith(".jsonl"):  # with an explicit format too
        with pytest.raises(ValueError, match="no records"):
            load_examples(tmp_path / name, format="jsonl")


@pytest.mark.parametrize(
    "record, message",
    [
        ({"id": "q5", "image": "x.png", "query": 5, "reference": "r"}, "query: expected text, got int 5"),
        (
            {"id": "r", "image": "x.png", "query": "q", "reference": True},
            "reference: expected text, got bool True",
        ),
        (
            {"id": [1, 2], "image": "x.png", "query": "q", "reference": "r"},
            "id: expected a string or an integer",
        ),
        (
            {"id": 2.5, "image": "x.png", "query": "q", "reference": "r"},
            "id: expected a string or an integer",
        ),
        (
            {"id": "c", "conversations": [{"from": "human", "value": 7}], "chosen": {"value": "r"}},
            "conversations: expected text, got int 7",
        ),
        (  # the 5 used to be dropped without a word
            {"id": "part", "image": "x.png", "query": ["is it?", 5], "reference": "r"},
            "query[1]: expected text, got int 5",
        ),
        (  # used to be "empty reference"
            {"id": "map", "image": "x.png", "query": "q", "reference": {"a": 1}},
            "reference: expected text or a message with a value, content or text key, got dict with keys ['a']",
        ),
    ],
)
def test_non_string_fields_are_errors_not_strings(tmp_path, record, message):
    """They used to be turned into "5", "True", "[1, 2]" and trained on."""
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps(
            {"id": "ok", "image": "x.png", "query": "q", "reference": "r"}
            if "conversations" not in record
            else {"id": "ok", "conversations": [{"from": "human", "value": "q"}], "chosen": {"value": "r"}}
        )
        + "\n"
        + json.dumps(record)
        + "\n"
    )
    ok, bad = load_examples(path)
    assert ok.meta.get("load_error") is None
    assert message in bad.meta["load_error"] and bad.source == "d.jsonl:2"
    # A record without a usable id is named by its line, as its place is.
    assert bad.id == (record["id"] if isinstance(record["id"], str) else "d.jsonl:2")


def test_integer_ids_are_ids(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": 17, "image": "x.png", "query": "q", "reference": "r"}) + "\n")
    assert load_examples(path)[0].id == "17"
