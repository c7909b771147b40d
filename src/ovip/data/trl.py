"""TRL's conversational vision preference format (what TRL's `DPOTrainer` reads, trl.DPOTrainer's documentation).

    {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}],
     "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}],
     "rejected": [...], "images": ["cat.jpg"]}

Q = the text parts of the last user message of `prompt` (or `prompt` itself when it is a string, with any
`<image>` placeholder removed), A* = the text of `chosen`, I+ = the first of `images` (a path relative to the
data file, or {"bytes", "path"} as `datasets` exports it).
"""

from __future__ import annotations

import os
from pathlib import Path

from ovip.data.files import convert_records, make_example, text_of
from ovip.records import Example


def from_record(record: dict, index: int, base_dir: Path, fallback_id: str) -> Example:
    """One TRL record as an Example."""
    prompt = record.get("prompt")
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role", "user") == "user"]
        prompt = users[-1] if users else None
    query = text_of(prompt, "prompt").replace("<image>", "").strip()
    images = record.get("images", record.get("image"))
    meta = {"rejected": text_of(record.get("rejected"), "rejected")} if record.get("rejected") else {}
    return make_example(
        record.get("id"),
        fallback_id,
        query,
        text_of(record.get("chosen"), "chosen").strip(),
        images,
        base_dir,
        meta,
    )


def load_trl(path: str | os.PathLike) -> list[Example]:
    """All records of a TRL conversational JSON / JSONL / parquet file."""
    return convert_records(path, from_record)
