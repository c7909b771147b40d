"""RLAIF-V preference data (`openbmb/RLAIF-V-Dataset` parquet shards; notes §5).

Rows have `question`, `chosen`, `rejected`, `image` = {"bytes": <encoded image>, "path": <file name>} and, in
the released shards, `idx`, `ds_name`, `origin_dataset`. OViP's training set is a subset of this data (paper
§3.1, "Implementation Details", via Yang et al. 2025). Q = question, A* = chosen (the reference answer the
judge compares against, as the authors' loop uses `chosen`), I+ = the image decoded lazily from its bytes, or
read from `path` relative to the data file when no bytes are embedded. `rejected` is kept in `meta`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ovip.data.files import convert_records, make_example, text_of
from ovip.records import Example

META_FIELDS = ("rejected", "ds_name", "origin_dataset", "origin_split", "image_path")


def from_record(record: dict, index: int, base_dir: Path, fallback_id: str) -> Example:
    """One RLAIF-V row as an Example."""
    meta = {k: record[k] for k in META_FIELDS if record.get(k) is not None}
    return make_example(
        record.get("idx", record.get("id")),
        fallback_id,
        text_of(record.get("question"), "question").strip(),
        text_of(record.get("chosen"), "chosen").strip(),
        record.get("image"),
        base_dir,
        meta,
    )


def load_rlaif(path: str | os.PathLike) -> list[Example]:
    """All rows of an RLAIF-V parquet shard (or the same fields in JSON / JSONL)."""
    return convert_records(path, from_record)
