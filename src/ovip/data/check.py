"""Validation of a whole data set before training: every bad record reported by id, nothing raised.

Checked for every Example: the record could be read and converted; its image exists and decodes (PIL verify
and a full decode, ovip.data.images); query and reference are not empty; its id is unique. With a `processor`
and `max_length`, also the prompt length with the image tokens expanded: a prompt longer than `max_length`
would be truncated through its image tokens, the "image features and image tokens do not match" failure users
hit in other frameworks (shared/notes/frameworks.md §4.4). Training refuses data with problems unless told to
skip the bad records (`--skip-invalid`, which drops `report.bad_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovip.data.images import image_problem, load_image
from ovip.records import Example


@dataclass
class CheckReport:
    """Result of `check_examples`: `bad` lists (example id, field, message), one entry per problem.

    `field` is one of "record", "image", "query", "reference", "id", "length".
    """

    n_examples: int
    bad: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def bad_ids(self) -> set[str]:
        return {example_id for example_id, _, _ in self.bad}

    def format(self, limit: int = 50) -> str:
        """A human-readable summary: counts, then up to `limit` problems, one per line."""
        if self.ok:
            return f"{self.n_examples} examples, no problems"
        lines = [f"{self.n_examples} examples, {len(self.bad)} problems in {len(self.bad_ids)} examples:"]
        lines += [f"  {example_id}  [{name}]  {message}" for example_id, name, message in self.bad[:limit]]
        if len(self.bad) > limit:
            lines.append(f"  ... and {len(self.bad) - limit} more")
        return "\n".join(lines)


def check_examples(examples: list[Example], processor=None, max_length: int | None = None) -> CheckReport:
    """Check every example (see module doc); the report lists the problems in example order."""
    report = CheckReport(n_examples=len(examples))
    first_seen: dict[str, int] = {}
    for index, example in enumerate(examples):
        problems = []
        if example.id in first_seen:
            problems.append(("id", f"duplicate id (first used by record {first_seen[example.id]})"))
        else:
            first_seen[example.id] = index
        if example.meta.get("load_error"):
            problems.append(("record", example.meta["load_error"]))
        else:
            image_error = image_problem(example)
            if image_error:
                problems.append(("image", image_error))
            if not example.query.strip():
                problems.append(("query", "empty query"))
            if not example.reference.strip():
                problems.append(("reference", "empty reference"))
            if processor is not None and max_length is not None and not image_error and example.query.strip():
                problems += _length_problems(example, processor, max_length)
        report.bad += [(example.id, name, message) for name, message in problems]
    return report


def prompt_length(example: Example, processor) -> int:
    """Tokens in the policy's prompt for `example`, image tokens expanded by the processor.

    The prompt is the processor's chat template applied to one user turn (image, then query), with the
    generation prompt; a processor without a template gets "<image token>\\n<query>".
    """
    image = load_image(example)
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": example.query}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = f"{getattr(processor, 'image_token', '<image>')}\n{example.query}"
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    return int(inputs["input_ids"].shape[-1])


def _length_problems(example: Example, processor, max_length: int) -> list[tuple[str, str]]:
    try:
        n = prompt_length(example, processor)
    except Exception as e:
        return [("length", f"processor failed: {type(e).__name__}: {e}")]
    if n > max_length:
        return [
            (
                "length",
                f"prompt is {n} tokens with image tokens expanded > max_length {max_length}: "
                "truncation would cut image tokens",
            )
        ]
    return []
