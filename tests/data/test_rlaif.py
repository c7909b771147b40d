"""Tests for ovip.data.rlaif: RLAIF-V parquet rows with embedded image bytes, written here with pyarrow."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ovip.data.check import check_examples
from ovip.data.rlaif import load_rlaif


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 5), (value, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_rlaif(path, rows):
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [("ds_name", pa.string()), ("image", image_type), ("question", pa.string()), ("chosen", pa.string()),
         ("rejected", pa.string()), ("origin_dataset", pa.string()), ("idx", pa.int64())]
    )  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _row(idx, image_bytes, question="What is red?", chosen="A square."):
    return {"ds_name": "RLAIF-V", "image": {"bytes": image_bytes, "path": f"{idx}.png"}, "question": question,
            "chosen": chosen, "rejected": "A circle.", "origin_dataset": "VQAv2", "idx": idx}  # fmt: skip


def test_rows_become_examples_with_lazily_decoded_images(tmp_path):
    path = tmp_path / "RLAIF-V-Dataset_000.parquet"
    write_rlaif(path, [_row(10, _png(200)), _row(11, _png(90), question=" Why? ")])
    first, second = load_rlaif(path)
    assert (first.id, first.query, first.reference) == ("10", "What is red?", "A square.")
    assert first.meta == {"rejected": "A circle.", "ds_name": "RLAIF-V", "origin_dataset": "VQAv2"}
    assert first.image_path is None and first.image.size == (6, 5)
    assert np.asarray(first.image.convert("RGB"))[0, 0].tolist() == [200, 0, 0]
    assert second.query == "Why?"
    assert check_examples([first, second]).ok


def test_corrupt_and_missing_bytes_are_reported_by_id(tmp_path):
    path = tmp_path / "shard.parquet"
    truncated = _png(10)[:-30]
    write_rlaif(
        path, [_row(1, b"garbage bytes"), _row(2, truncated), _row(3, None), _row(4, _png(5), chosen="")]
    )
    examples = load_rlaif(path)
    assert len(examples) == 4
    report = check_examples(examples)
    fields = {(example_id, name) for example_id, name, *_ in report.bad}
    assert fields == {("1", "image"), ("2", "image"), ("3", "image"), ("4", "reference")}
    messages = {example_id: message for example_id, _, message, *_ in report.bad}
    assert "cannot decode" in messages["1"] and "corrupt" in messages["2"]
    assert "image file not found" in messages["3"]  # no bytes: falls back to the row's path, which is absent
