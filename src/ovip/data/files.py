"""Reading raw records from .jsonl / .json / .parquet files, never failing on one bad record.

Every loader turns a file into `ovip.records.Example`s with the same rule: a record that cannot be read or
converted becomes an Example with an empty query and reference and `meta["load_error"]` set, so that
`ovip.data.check.check_examples` reports it by id instead of the loader crashing or silently dropping it.
Every Example keeps where it was read (`Example.source`): "data.jsonl:12" (file and line), "data.json record
3", "rows.parquet row 3"; every number a user sees counts from 1, as line numbers do. A record without an id
gets `"<file name>:<N>"`, N its line in a .jsonl file, else its record (row) number: stable across runs while
the file is unchanged. A line that is not UTF-8 is such a bad
record; a whole file that cannot be read (not a regular file, over `MAX_DATA_BYTES`, empty, not UTF-8 JSON,
broken JSON, unreadable parquet) is one error naming the file. Text fields must be text: a number where a
query should be is an error, not the string "5".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ovip.data.paths import file_problem, shown
from ovip.records import Example

# The most bytes read into memory at once from a data file: a whole .json file, or one line of a .jsonl file.
# A larger .json file is refused before it is read (write it as .jsonl or .parquet, which are read record by
# record); a longer .jsonl line is a bad record. 1 GiB of JSON text takes several GiB once parsed.
MAX_DATA_BYTES = 1 << 30


def check_data_file(path: Path) -> None:
    """A data file must be a regular file: FileNotFoundError when absent, a one-line ValueError naming the file
    and what it is otherwise (a FIFO would block the reader, /dev/zero never ends, a folder is no file)."""
    problem = file_problem(path)
    if problem == "not found":
        raise FileNotFoundError(f"data file not found: {shown(path)}")
    if problem:
        raise ValueError(f"data file {problem}: {shown(path)}")


def make_example(
    record_id, fallback_id: str, query: str, reference: str, image_ref, base_dir: Path, meta: dict
) -> Example:
    """The Example every loader builds: image resolved (a problem goes to `meta["image_error"]`), id defaulted.

    An id is a string or an integer (RLAIF-V's `idx`); anything else (a float, a list, true) is an error."""
    from ovip.data.images import resolve_image

    if record_id is not None and not _is_id(record_id):
        raise TypeError(f"id: expected a string or an integer, got {type(record_id).__name__} {record_id!r}")
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


def read_records(path: str | os.PathLike) -> Iterator[tuple[int, str, dict | None, str | None]]:
    """Yield (index, where, record, error) for each record of a .jsonl, .json (a list, or {"data": [...]}) or
    .parquet file; exactly one of record and error is None; `index` counts records from 0 (a position in the
    data), `where` names the place from 1: "file:line", "file record N" or "file row N". Parquet is read in
    batches (RLAIF-V embeds image bytes), JSONL line by line; only a .json file is read whole."""
    path = Path(path)
    check_data_file(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet_records(path)
    elif suffix == ".jsonl":
        with open(path, "rb") as f:
            index = 0
            for number, raw in _lines(f):
                where = f"{path.name}:{number}"
                if raw is None:
                    yield (
                        index,
                        where,
                        None,
                        f"line {number} is longer than {MAX_DATA_BYTES:,} bytes "
                        "(ovip.data.files.MAX_DATA_BYTES)",
                    )
                    index += 1
                    continue
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    yield index, where, None, f"line {number} is not UTF-8 text (byte {e.start} of the line)"
                    index += 1
                    continue
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    yield index, where, None, f"invalid JSON on line {number}: {e}"
                else:
                    yield (
                        index,
                        where,
                        *((record, None) if isinstance(record, dict) else (None, "not an object")),
                    )
                index += 1
    else:
        data = _json_document(path)
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        for index, record in enumerate(data):
            where = f"{path.name} record {index + 1}"
            yield index, where, *((record, None) if isinstance(record, dict) else (None, "not an object"))


def _lines(f) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each line of a binary file, None for a line over `MAX_DATA_BYTES`, whose
    bytes are skipped in bounded chunks rather than held."""
    number = 0
    while raw := f.readline(MAX_DATA_BYTES + 1):
        number += 1
        if len(raw) > MAX_DATA_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(1 << 20)
            yield number, None
        else:
            yield number, raw


def _json_document(path: Path):
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(MAX_DATA_BYTES + 1) if size <= MAX_DATA_BYTES else b""  # bounded even if it grows
    if max(size, len(raw)) > MAX_DATA_BYTES:
        raise ValueError(
            f"{shown(path)}: {max(size, len(raw)):,} bytes, over the limit of {MAX_DATA_BYTES:,} bytes for a "
            ".json file, which is read whole (ovip.data.files.MAX_DATA_BYTES); write it as .jsonl (one record "
            "per line) or .parquet, which are read record by record"
        )
    if not raw.strip():
        raise ValueError(f"{path}: empty file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None


def _parquet_records(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        shard = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: cannot read parquet: {e}") from None
    index = 0
    for batch in shard.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            yield index, f"{path.name} row {index + 1}", row, None
            index += 1


def convert_records(path: str | os.PathLike, convert: Converter) -> list[Example]:
    """All records of `path` converted with `convert`; unreadable or unconvertible ones become flagged Examples."""
    path = Path(path)
    base_dir = path.resolve().parent
    examples = []
    for index, where, record, error in read_records(path):
        fallback_id = where if path.suffix.lower() == ".jsonl" else f"{path.name}:{index + 1}"
        if error is None:
            try:
                example = convert(record, index, base_dir, fallback_id)
                example.source = where
                examples.append(example)
                continue
            except TypeError as e:  # a field of the wrong type; the message names the field
                error = f"cannot convert record: {e}"
            except Exception as e:  # a malformed record is reported by the check, not raised
                error = f"cannot convert record: {type(e).__name__}: {e}"
        record_id = record.get("id") if isinstance(record, dict) else None
        record_id = str(record_id) if _is_id(record_id) else fallback_id
        examples.append(
            Example(id=record_id, query="", reference="", meta={"load_error": error}, source=where)
        )
    if not examples:
        raise ValueError(f"{path}: no records (an empty file?)")
    return examples


def first_record(path: str | os.PathLike) -> dict | None:
    """The first readable record of `path` (for format detection), or None."""
    for _, _, record, _ in read_records(path):
        if record is not None:
            return record
    return None


def text_of(value, field: str = "text") -> str:
    """A message's text: a string, {"value"|"content"|"text": ...}, or a list of content parts; missing is "".

    Anything else is a TypeError naming `field` and the type found: a query of 5 is a broken record, and
    training on the string "5" would hide it; a list part that is not text (["is it?", 5]) is not dropped, and
    a mapping without a text key ({"a": 1}) is not an empty text. Parts typed as something else
    ({"type": "image"}) are skipped: they are the image's place in the message."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("value", "content", "text"):
            if key in value:
                return text_of(value[key], field)
        raise TypeError(
            f"{field}: expected text or a message with a value, content or text key, "
            f"got dict with keys {_brief(sorted(map(str, value)))}"
        )
    if isinstance(value, list):
        texts = []
        for i, part in enumerate(value):
            if isinstance(part, dict) and part.get("type", "text") != "text":
                continue
            if not isinstance(part, (str, dict)):
                raise TypeError(f"{field}[{i}]: expected text, got {type(part).__name__} {_brief(part)}")
            texts.append(text_of(part, f"{field}[{i}]"))
        return "\n".join(t for t in texts if t)
    raise TypeError(f"{field}: expected text, got {type(value).__name__} {_brief(value)}")


def _brief(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_id(value) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
