"""Read a model's answers to a benchmark and check them against the benchmark's ids.

Accepted files: JSONL (one `{"id": ..., "response": ...}` object per line) or a JSON list of such
objects (AMBER's inference.py format). Each benchmark also reads its official answer files through an
`AnswerKeys` (`ANSWER_KEYS`): LLaVA's `{"question_id", "text"}` lines, Object HalBench's `{"image_id",
"text" | "answer" | "model_answer"}`, MMHal-Bench's template with `model_answer` filled in (ids are the
record positions). Ids are compared as strings, so `1` and `"1"` are the same item. Every problem is
collected first and reported in one ValueError (the first 20 of each kind, plus counts), so a bad file is
fixed in one pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SHOW = 20


@dataclass(frozen=True)
class AnswerKeys:
    """Which keys of an answer record hold its id and its text; the first key present wins.

    `positional`: a record without any id key gets its position in the file (MMHal's filled template).
    """

    ids: tuple[str, ...] = ("id",)
    texts: tuple[str, ...] = ("response",)
    positional: bool = False

    def describe(self) -> str:
        ids = " | ".join(repr(k) for k in self.ids) + (" (or the position)" if self.positional else "")
        return f"an id ({ids}) and a text ({' | '.join(repr(k) for k in self.texts)})"


OURS = AnswerKeys()
ANSWER_KEYS = {  # ours first, then the keys of each benchmark's official answer files
    "amber_gen": OURS, "amber_dis": OURS,
    "chair": AnswerKeys(("id", "image_id"), ("response", "text", "answer", "model_answer")),
    "objecthal": AnswerKeys(("id", "image_id"), ("response", "text", "answer", "model_answer")),
    "mmhal": AnswerKeys(("id",), ("response", "model_answer"), positional=True),
    "llava_bench": AnswerKeys(("id", "question_id"), ("response", "text")),
}  # fmt: skip
GENERAL_KEYS = AnswerKeys(("id", "question_id"), ("response", "text"))  # LLaVA's model_vqa output


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


def _field(rec: dict, keys: tuple[str, ...]):
    return next((rec[k] for k in keys if k in rec), None)


def load_responses(
    path: str | Path, expected_ids: Iterable, allow_missing: bool = False, keys: AnswerKeys = OURS
) -> dict[str, str]:
    """{id (as str): response} for a responses file, validated against the benchmark's `expected_ids`.

    Problems reported together in one ValueError: records that are not objects or lack an id / a text
    (`keys`), non-string responses, duplicate ids, ids the benchmark does not have, and (unless
    `allow_missing`) benchmark ids without a response.
    """
    path = Path(path)
    records = read_responses(path)
    expected = [str(i) for i in expected_ids]
    expected_set = set(expected)
    out: dict[str, str] = {}
    malformed, non_string, duplicate, unknown = [], [], [], []
    for n, rec in enumerate(records):
        id_ = _field(rec, keys.ids) if isinstance(rec, dict) else None
        if id_ is None and keys.positional and isinstance(rec, dict):
            id_ = n
        text = _field(rec, keys.texts) if isinstance(rec, dict) else None
        if id_ is None or not any(k in rec for k in keys.texts):
            malformed.append(n)
            continue
        key = str(id_)
        if key not in expected_set:
            unknown.append(id_)
        elif not isinstance(text, str):
            non_string.append(id_)
        elif key in out:
            duplicate.append(id_)
        else:
            out[key] = text
    answered = set(out) | {
        str(i) for i in non_string
    }  # a non-string answer is reported once, not also missing
    missing = [] if allow_missing else [i for i in expected if i not in answered]
    problems = [
        (
            malformed,
            "records without "
            + ("an 'id' and a 'response'" if keys == OURS else keys.describe())
            + " (record index)",
        ),
        (non_string, "responses that are not strings (id)"),
        (duplicate, "duplicate ids"),
        (unknown, "ids not in the benchmark"),
        (missing, "benchmark ids without a response"),
    ]
    lines = [f"  {len(items)} {what}: {_head(items)}" for items, what in problems if items]
    if lines:
        raise ValueError(
            f"{path}: {len(records)} records, {len(expected)} benchmark ids; problems:\n" + "\n".join(lines)
        )
    return out
