"""Read a model's answers to a benchmark and check them against the benchmark's ids.

Accepted files: JSONL (one `{"id": ..., "response": ...}` object per line) or a JSON list of such
objects (AMBER's inference.py format, notes/benchmarks.md §1.2). Ids are compared as strings, so
`1` and `"1"` are the same item. Every problem is collected first and reported in one ValueError
(the first 20 of each kind, plus counts), so a bad file is fixed in one pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

_SHOW = 20


def read_responses(path: str | Path) -> list[dict]:
    """The records of a JSON-list or JSONL file, unvalidated. Raises ValueError on unparsable content."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    else:
        records, bad = [], []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                bad.append(lineno)
        if bad:
            raise ValueError(f"{path}: {len(bad)} lines are not valid JSON: {_head(bad)}")
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list or JSONL of objects")
    return records


def _head(items: list) -> str:
    shown = ", ".join(repr(x) for x in items[:_SHOW])
    return shown + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def load_responses(path: str | Path, expected_ids: Iterable, allow_missing: bool = False) -> dict[str, str]:
    """{id (as str): response} for a responses file, validated against the benchmark's `expected_ids`.

    Problems reported together in one ValueError: records that are not objects or lack "id" /
    "response", non-string responses, duplicate ids, ids the benchmark does not have, and (unless
    `allow_missing`) benchmark ids without a response.
    """
    path = Path(path)
    records = read_responses(path)
    expected = [str(i) for i in expected_ids]
    expected_set = set(expected)
    out: dict[str, str] = {}
    malformed, non_string, duplicate, unknown = [], [], [], []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or "id" not in rec or "response" not in rec:
            malformed.append(n)
            continue
        key = str(rec["id"])
        if key not in expected_set:
            unknown.append(rec["id"])
        elif not isinstance(rec["response"], str):
            non_string.append(rec["id"])
        elif key in out:
            duplicate.append(rec["id"])
        else:
            out[key] = rec["response"]
    answered = set(out) | {str(i) for i in non_string}  # a non-string answer is reported once, not also missing
    missing = [] if allow_missing else [i for i in expected if i not in answered]
    problems = [
        (malformed, "records without an 'id' and a 'response' (record index)"),
        (non_string, "responses that are not strings (id)"),
        (duplicate, "duplicate ids"),
        (unknown, "ids not in the benchmark"),
        (missing, "benchmark ids without a response"),
    ]
    lines = [f"  {len(items)} {what}: {_head(items)}" for items, what in problems if items]
    if lines:
        raise ValueError(f"{path}: {len(records)} records, {len(expected)} benchmark ids; problems:\n"
                         + "\n".join(lines))
    return out
