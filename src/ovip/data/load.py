"""`load_examples`: any supported data file as a list of `ovip.records.Example` (the D of Algorithm 1).

Formats: "jsonl" (ovip's own: id, image, query, reference), "sharegpt" (the authors' LLaMA-Factory files),
"rlaif" (RLAIF-V parquet rows), "trl" (TRL conversational). With format="auto" the file type (.jsonl, .json,
.parquet) decides how records are read and the first record's fields decide the format:

    conversations            -> sharegpt
    prompt and chosen        -> trl
    question                 -> rlaif
    query                    -> jsonl

Loading never fails on a bad record (see `ovip.data.files`); run `ovip.data.check.check_examples` next.
"""

from __future__ import annotations

import os
from pathlib import Path

from ovip.data import jsonl, rlaif, sharegpt, trl
from ovip.data.files import check_data_file, convert_records, first_record
from ovip.records import Example

CONVERTERS = {
    "jsonl": jsonl.from_record,
    "sharegpt": sharegpt.from_record,
    "rlaif": rlaif.from_record,
    "trl": trl.from_record,
}
FORMATS = ("auto", *CONVERTERS)


def detect_format(path: str | os.PathLike) -> str:
    """The format of `path` from its first record's fields; ValueError when no rule matches."""
    record = first_record(path)
    if record is None:
        raise ValueError(f"{path}: no readable record to detect the format from")
    keys = set(record)
    if "conversations" in keys:
        return "sharegpt"
    if {"prompt", "chosen"} <= keys:
        return "trl"
    if "question" in keys:
        return "rlaif"
    if "query" in keys:
        return "jsonl"
    raise ValueError(
        f"{path}: cannot detect the data format from fields {sorted(keys)}; pass format= one of {FORMATS[1:]}"
    )


def load_examples(path: str | os.PathLike, format: str = "auto") -> list[Example]:
    """Every record of `path` as an Example, bad ones included and flagged for the check."""
    if format not in FORMATS:
        raise ValueError(f"unknown data format {format!r}; expected one of {FORMATS}")
    path = Path(path)
    check_data_file(path)  # before anything opens it: a FIFO would block, /dev/zero would never end
    if format == "auto":
        format = detect_format(path)
    return convert_records(path, CONVERTERS[format])
