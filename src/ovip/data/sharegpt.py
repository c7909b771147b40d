"""The authors' data format: LLaMA-Factory sharegpt "ranking" records (notes §1.4, `data/ovip_sample.json`).

    {"conversations": [{"from": "human", "value": "<image>\\nGive a thorough description ..."}],
     "chosen": {"from": "gpt", "value": "..."}, "rejected": {"from": "gpt", "value": "..."},
     "images": ["../data/ovip_images/<id>.jpg", ...]}

Q is the first human turn with the `<image>` placeholder removed (the policy's processor places the image);
A* is `chosen` (the authors' online loop uses `chosen` as the ground truth and ignores `rejected`, which is
kept in `meta`); I+ is the first of `images`, a path relative to the data file or absolute.
"""

from __future__ import annotations

import os
from pathlib import Path

from ovip.data.files import convert_records, make_example, text_of
from ovip.records import Example

IMAGE_PLACEHOLDER = "<image>"


def from_record(record: dict, index: int, base_dir: Path, fallback_id: str) -> Example:
    """One sharegpt record as an Example; a record without a human turn has an empty query."""
    turns = record.get("conversations") or []
    human = next((t for t in turns if isinstance(t, dict) and t.get("from") in ("human", "user")), None)
    query = text_of(human, "conversations").replace(IMAGE_PLACEHOLDER, "").strip()
    meta = {"rejected": text_of(record.get("rejected"), "rejected")} if record.get("rejected") else {}
    return make_example(
        record.get("id"),
        fallback_id,
        query,
        text_of(record.get("chosen"), "chosen").strip(),
        record.get("images"),
        base_dir,
        meta,
    )


def load_sharegpt(path: str | os.PathLike) -> list[Example]:
    """All records of a LLaMA-Factory sharegpt JSON / JSONL file."""
    return convert_records(path, from_record)
