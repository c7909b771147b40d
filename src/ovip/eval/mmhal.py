"""MMHal-Bench judge prompt, rating parser and summary (paper Table 2 "MMHal Score", App. A.2).

The protocol is LLaVA-RLHF's (Sun et al., 2024; paper Appendix A.2): a judge rates each answer 0-6 against the
question, a human-written answer and the image's content (OpenImages labels, or, as OViP does with
gpt-4o-2024-05-13 at temperature 0, the image itself), and
  score              = mean rating over the rated items (range 0-6);
  hallucination rate = % of rated items with rating < 3 (0, 1, 2 mean "with hallucination");
  informativeness    = % of ratings not in {0, 3} (OViP's definition).

The original reference code is GPL-3.0, so the prompt below is our own wording of the same rubric,
without its five worked examples; judge scores may therefore shift slightly against published numbers.
A reply without exactly one rating is a failed judgment: counted in `n_failed` and never scored (the
original scores it 0, which mixes judge failures into the hallucination rate).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from ovip.eval.verdict import read_verdict

MMHAL_PROMPT = """Please act as an impartial and objective judge and evaluate the response of a Large \
Multimodal Model (LMM) to a question about an image. Judge two things: how informative the response \
is, and whether it contains hallucination. Hallucination here means any claim about the image that is \
not present in the image or implied by it: an object, a count, an attribute, an action, an emotion or \
any other detail.

You are given the image contents, the question, a standard human-generated answer and the LMM \
response. The human answer may be short or incomplete: a response that adds correct detail is not \
hallucinating, and a response that omits detail is less informative but not hallucinating. Be cautious \
before calling something a hallucination, and analyse the response in detail before deciding.

First give a brief explanation of your judgment, then end your reply with one line "Rating: X", where \
X is one of:
- 6 = very informative with good analysis or reasoning, no hallucination
- 5 = very informative, no hallucination
- 4 = somewhat informative, no hallucination
- 3 = not informative, no hallucination
- 2 = very informative, with hallucination
- 1 = somewhat informative, with hallucination
- 0 = not informative, with hallucination

### Image Contents
{image_contents}

### Question
{question}

### Standard Human-Generated Answer
{gt_answer}

### LMM Response to Evaluate
{response}
"""

_IMAGE_HEADING = "### Image Contents"
QUESTION_TYPES = (
    "attribute",
    "adversarial",
    "comparison",
    "counting",
    "relation",
    "environment",
    "holistic",
    "other",
)  # the 96 records cycle through these 8 types in this order (§4.1)


def mmhal_prompt(question: str, gt_answer: str, response: str, image_contents: Sequence[str] = ()) -> str:
    """The text-only judge message: OpenImages labels joined with ", " stand in for the image."""
    return MMHAL_PROMPT.format(
        image_contents=", ".join(image_contents), question=question, gt_answer=gt_answer, response=response
    )


def image_data_url(image: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def mmhal_messages(
    question: str,
    gt_answer: str,
    response: str,
    image_contents: Sequence[str] = (),
    image: bytes | None = None,
    mime: str = "image/jpeg",
) -> list[dict]:
    """One user message for the judge.

    With `image` (encoded file bytes), OViP's multimodal variant: the prompt is cut at "### Image
    Contents"; the text before it, then the image as a base64 data URL, then the Question / answer /
    response sections. The label list is not sent, the image replaces it (§4.2).
    """
    text = mmhal_prompt(question, gt_answer, response, image_contents)
    if image is None:
        return [{"role": "user", "content": text}]
    head, tail = text.split(_IMAGE_HEADING, 1)
    rest = tail[tail.index("### Question") :]  # drop the heading's (label) body
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": head},
                {"type": "image_url", "image_url": {"url": image_data_url(image, mime)}},
                {"type": "text", "text": rest},
            ],
        }
    ]


RATING_MAX = 6


def parse_rating(reply: str | None) -> int | None:
    """The rating k in 0..6 when every "Rating:" in the reply names the same k, else None.

    Case-insensitive, markdown emphasis and brackets ignored ("**Rating**: 5", "**Rating: 5**", "Rating: [5]").
    A reply that names two different ratings is ambiguous and fails, as in the original scorer; so does a
    decimal ("4.5"), a range ("3-4") or a scale other than the rubric's 0-6 ("Rating: 4/10", "4 out of 5"),
    by the rules of `ovip.eval.verdict`.
    """
    rating = read_verdict(reply, "rating", RATING_MAX, decimals=False)
    return None if rating is None else int(rating)


def mmhal_summary(ratings: Sequence[int | None], question_types: Sequence[str] | None = None) -> dict:
    """Score, hallucination rate (%), informativeness (%) over the rated items, plus per-type scores.

    `ratings[i]` is None for a failed judgment. `question_types` defaults to the benchmark's cycle of
    8 types (item i has type QUESTION_TYPES[i % 8]).
    """
    if question_types is None:
        question_types = [QUESTION_TYPES[i % 8] for i in range(len(ratings))]
    if len(question_types) != len(ratings):
        raise ValueError(f"{len(ratings)} ratings but {len(question_types)} question types")
    rated = [r for r in ratings if r is not None]

    def mean(xs):
        return sum(xs) / len(xs) if xs else 0.0

    per_type: dict[str, list[int]] = {}
    for r, t in zip(ratings, question_types, strict=True):
        if r is not None:
            per_type.setdefault(t, []).append(r)
    return {
        "benchmark": "mmhal",
        "n": len(ratings),
        "n_rated": len(rated),
        "n_failed": len(ratings) - len(rated),
        "score": round(mean(rated), 3),
        "hallucination_rate": round(100 * mean([r < 3 for r in rated]), 2),
        "informativeness": round(100 * mean([r not in (0, 3) for r in rated]), 2),
        "per_type": {t: round(mean(v), 3) for t, v in per_type.items()},
    }
