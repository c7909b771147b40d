"""ovip's own data format: one JSON object per line with `id`, `image`, `query`, `reference`.

`image` is a path relative to the data file (or absolute); `reference` is A*, the answer the judge compares
against (Eq. 1). Other fields are kept in `Example.meta`. The built-in world writes this format.

    {"id": "scene-17", "image": "images/scene-17.png", "query": "What is left of the cat?", "reference": "A dog."}
"""

from __future__ import annotations

import os
from pathlib import Path

from ovip.data.files import convert_records, make_example, text_of
from ovip.records import Example

FIELDS = ("id", "image", "query", "reference")


def from_record(record: dict, index: int, base_dir: Path, fallback_id: str) -> Example:
    """One record of this format as an Example (missing fields become empty, for the check to report)."""
    meta = {k: v for k, v in record.items() if k not in FIELDS}
    return make_example(
        record.get("id"),
        fallback_id,
        text_of(record.get("query"), "query"),
        text_of(record.get("reference"), "reference"),
        record.get("image"),
        base_dir,
        meta,
    )


def load_jsonl(path: str | os.PathLike) -> list[Example]:
    """All records of an ovip .jsonl (or .json list) file."""
    return convert_records(path, from_record)
