"""Validation of a whole data set before training: every bad record reported by id and place, nothing raised.

Checked for every Example: the record could be read and converted; its image exists, is within the pixel
limit (read from the header, before decoding) and decodes (PIL verify and a full decode, ovip.data.images);
query and reference are not empty; its id was not used by an earlier record without other problems (of a
repeated id, the first valid copy is kept and later ones are the problem; an invalid first copy does not take
the id, so skipping bad records never loses every copy). With a `processor` and `max_length`, also the length of the sequence training scores
for the reference answer: prompt with the image tokens expanded plus A* (the chosen answer of a fallback pair,
Algorithm 1), built by the same code as training (`ovip.policy.batch.collate`), which refuses, rather than
truncates, a longer one: truncation would cut image tokens or the answer. Training refuses data with problems
unless told to skip the bad records (`train.skip_invalid`, which drops `report.bad_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ovip.data.images import MAX_PIXELS, image_problem, load_image
from ovip.records import Example


class Problem(NamedTuple):
    """One problem of one record: `field` is record | image | query | reference | id | length; `index` is
    the record's position in the data (from 0, for code), `source` its place in the file ("data.jsonl:12";
    numbers shown to people count from 1)."""

    example_id: str
    field: str
    message: str
    index: int = -1
    source: str = ""


@dataclass
class CheckReport:
    """Result of `check_examples`: `bad` lists the problems in record order (several per record possible)."""

    n_examples: int
    bad: list[Problem] = field(default_factory=list)
    max_pixels: int = MAX_PIXELS

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def bad_ids(self) -> set[str]:
        return {p.example_id for p in self.bad}

    @property
    def bad_indices(self) -> set[int]:
        """Positions of the records to drop: a duplicated id drops the later copies only."""
        return {p.index for p in self.bad}

    def format(self, limit: int = 50) -> str:
        """A human-readable summary: counts, then up to `limit` problems, one per line."""
        if self.ok:
            return f"{self.n_examples} examples, no problems"
        lines = [f"{self.n_examples} examples, {len(self.bad)} problems in {len(self.bad_indices)} examples:"]
        lines += [
            f"  {p.example_id}  [{p.field}]  {p.message}" + (f"  ({p.source})" if p.source else "")
            for p in self.bad[:limit]
        ]
        if len(self.bad) > limit:
            lines.append(f"  ... and {len(self.bad) - limit} more")
        return "\n".join(lines)

    def records(self) -> list[dict]:
        """The bad records, one dict each (record: its number from 1; id, source, problems), for a JSON report."""
        out: dict[int, dict] = {}
        for p in self.bad:
            entry = out.setdefault(
                p.index, {"record": p.index + 1, "id": p.example_id, "source": p.source, "problems": []}
            )
            entry["problems"].append({"field": p.field, "message": p.message})
        return list(out.values())


def check_examples(
    examples: list[Example], processor=None, max_length: int | None = None, max_pixels: int = MAX_PIXELS
) -> CheckReport:
    """Check every example (see module doc); the report lists the problems in example order."""
    report = CheckReport(n_examples=len(examples), max_pixels=max_pixels)
    kept: dict[str, int] = {}  # id -> position of its first copy without problems
    for index, example in enumerate(examples):
        problems = _problems(example, processor, max_length, max_pixels)
        if example.id in kept:
            first = kept[example.id]
            place = examples[first].source or f"record {first + 1}"
            problems.insert(0, ("id", f"duplicate id (first used by {place})"))
        elif not problems:
            kept[example.id] = index
        report.bad += [
            Problem(example.id, name, message, index, example.source) for name, message in problems
        ]
    return report


def _problems(example: Example, processor, max_length: int | None, max_pixels: int) -> list[tuple[str, str]]:
    """(field, message) for each problem of one example, its id aside."""
    problems = []
    if example.meta.get("load_error"):
        problems.append(("record", example.meta["load_error"]))
    else:
        image_error = image_problem(example, max_pixels)
        if image_error:
            problems.append(("image", image_error))
        if not example.query.strip():
            problems.append(("query", "empty query"))
        if not example.reference.strip():
            problems.append(("reference", "empty reference"))
        if processor is not None and max_length is not None and not image_error and example.query.strip():
            problems += _length_problems(example, processor, max_length, max_pixels)
    return problems


def prompt_length(example: Example, processor, max_pixels: int = MAX_PIXELS) -> int:
    """Tokens in the policy's prompt for `example` (image, then query, then the generation prompt), image
    tokens expanded by the processor: what rollout feeds the policy (`ovip.policy.batch.prompt_text`)."""
    from ovip.policy.batch import prompt_text

    image = load_image(example, max_pixels, processor)
    inputs = processor(
        text=[prompt_text(processor, example.query, True)], images=[image], return_tensors="pt"
    )
    return int(inputs["input_ids"].shape[-1])


def scored_length(example: Example, processor, max_pixels: int = MAX_PIXELS) -> int:
    """Tokens in the sequence training scores for the reference answer: prompt + A* + end of turn."""
    from ovip.policy.batch import Condition, collate

    image = load_image(example, max_pixels, processor)
    batch = collate(processor, [Condition(image, example.query, example.reference)])
    return int(batch.inputs["attention_mask"].sum())


def _length_problems(example: Example, processor, max_length: int, max_pixels: int) -> list[tuple[str, str]]:
    try:
        prompt, total = (
            prompt_length(example, processor, max_pixels),
            scored_length(example, processor, max_pixels),
        )
    except Exception as e:
        return [("length", f"processor failed: {type(e).__name__}: {e}")]
    if prompt > max_length:
        return [
            (
                "length",
                f"prompt is {prompt} tokens with image tokens expanded > max_length {max_length}: "
                "truncation would cut image tokens",
            )
        ]
    if total > max_length:
        return [
            (
                "length",
                f"prompt + reference answer is {total} tokens (prompt {prompt}) > max_length "
                f"{max_length}: training refuses it",
            )
        ]
    return []
