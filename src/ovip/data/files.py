"""Reading raw records from .jsonl / .json / .parquet files, never failing on one bad record.

Every loader turns a file into `ovip.records.Example`s with the same rule: a record that cannot be read or
converted becomes an Example with an empty query and reference and `meta["load_error"]` set, so that
`ovip.data.check.check_examples` reports it by id instead of the loader crashing or silently dropping it.
A record without an id gets `"<file name>:<index>"`, stable across runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ovip.records import Example


def make_example(
    record_id, fallback_id: str, query: str, reference: str, image_ref, base_dir: Path, meta: dict
) -> Example:
    """The Example every loader builds: image resolved (a problem goes to `meta["image_error"]`), id defaulted."""
    from ovip.data.images import resolve_image

    image, image_path, image_error = resolve_image(image_ref, base_dir)
    if image_error:
        meta = {**meta, "image_error": image_error}
    return Example(
        id=fallback_id if record_id is None else str(record_id),
        query=query,
        reference=reference,
        image=image,
        image_path=image_path,
        meta=meta,
    )


# (record, index, base_dir, fallback_id) -> Example
Converter = Callable[[dict, int, Path, str], Example]


def read_records(path: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield (index, record, error) for each record of a .jsonl, .json (a list, or {"data": [...]}) or .parquet
    file; exactly one of record and error is None. Parquet is read in batches (RLAIF-V embeds image bytes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        index = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            for row in batch.to_pylist():
                yield index, row, None
                index += 1
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            index = 0
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    yield index, None, f"invalid JSON: {e}"
                else:
                    yield (
                        (index, record, None) if isinstance(record, dict) else (index, None, "not an object")
                    )
                index += 1
    else:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        for index, record in enumerate(data):
            yield (index, record, None) if isinstance(record, dict) else (index, None, "not an object")


def convert_records(path: str | os.PathLike, convert: Converter) -> list[Example]:
    """All records of `path` converted with `convert`; unreadable or unconvertible ones become flagged Examples."""
    path = Path(path)
    base_dir = path.resolve().parent
    examples = []
    for index, record, error in read_records(path):
        fallback_id = f"{path.name}:{index}"
        if error is None:
            try:
                examples.append(convert(record, index, base_dir, fallback_id))
                continue
            except Exception as e:  # a malformed record is reported by the check, not raised
                error = f"cannot convert record: {type(e).__name__}: {e}"
        record_id = (
            str(record["id"]) if isinstance(record, dict) and record.get("id") is not None else fallback_id
        )
        examples.append(Example(id=record_id, query="", reference="", meta={"load_error": error}))
    return examples


def first_record(path: str | os.PathLike) -> dict | None:
    """The first readable record of `path` (for format detection), or None."""
    for _, record, _ in read_records(path):
        if record is not None:
            return record
    return None


def text_of(value) -> str:
    """A message's text: a string, {"value"|"content"|"text": ...}, or a list of content parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("value", "content", "text"):
            if key in value:
                return text_of(value[key])
        return ""
    if isinstance(value, list):
        return "\n".join(t for t in (text_of(part) for part in value if _is_text_part(part)) if t)
    return str(value)


def _is_text_part(part) -> bool:
    return isinstance(part, str) or (isinstance(part, dict) and part.get("type", "text") == "text")
