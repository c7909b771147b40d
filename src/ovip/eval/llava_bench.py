"""LLaVA-Bench (In-the-Wild) review prompt, score parsing and relative score (paper Table 2, "LV").

Follows LLaVA's eval_gpt_review_bench.py + summarize_gpt_review.py (Liu et al., 2023): a
text-only judge sees the human caption(s), the question, the GPT-4 reference answer as Assistant 1 and
the model answer as Assistant 2, and writes both 1-10 scores on its first line. OViP's judge is
gpt-4o-2024-05-13 at temperature 0.2 (§5.4). The relative score is a ratio of means,
mean(model) / mean(reference) * 100, per category (conv / detail / complex) and overall ("all").

Deviation: the original turns an unparsable review into the pair [-1, -1] and averages it in; here it
is a failed review, counted in `n_failed` and left out of the means (`include_failed=True` restores
the original behaviour for comparison). A review's scores must also keep to the rule's 1-10 scale (0 is let
through), where the original reads any `float()`: "80 60", "nan" or a review naming another scale fail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ovip.eval.verdict import names_only_scale

# rule.json's prompt for llava_bench_conv / _detail / _complex (identical text; LLaVA, Apache-2.0).
REVIEW_RULE = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above. The user asks the question on observing an image. For your reference, the "
    "visual content in the image is represented with a few sentences describing the image. \n"
    "Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant "
    "receives an overall score on a scale of 1 to 10, where a higher score indicates better overall "
    "performance.\n"
    "Please first output a single line containing only two values indicating the scores for Assistant 1 and "
    "2, respectively. The two scores are separated by a space.\n"
    "In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any "
    "potential bias and ensuring that the order in which the responses were presented does not affect your "
    "judgment."
)
REVIEW_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
CATEGORIES = ("conv", "detail", "complex")


def review_messages(context: str | Sequence[str], question: str, reference: str, answer: str) -> list[dict]:
    """System + user messages for one review; `reference` is Assistant 1 (GPT-4), `answer` Assistant 2."""
    caption = context if isinstance(context, str) else "\n".join(context)
    content = (
        f"[Context]\n{caption}\n\n"
        f"[Question]\n{question}\n\n"
        f"[Assistant 1]\n{reference}\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{answer}\n\n[End of Assistant 2]\n\n"
        f"[System]\n{REVIEW_RULE}\n\n"
    )
    return [{"role": "system", "content": REVIEW_SYSTEM}, {"role": "user", "content": content}]


SCORE_MAX = 10.0
_SCORE = re.compile(r"[0-9]+(?:\.[0-9]*)?")  # ASCII digits; "6." as the original's float("6.")


def parse_review(review: str | None) -> tuple[float, float] | None:
    """(reference score, model score) from the first line, or None when it is not exactly two scores.

    As the original: commas count as spaces, then the line must split (on single spaces) into exactly
    two numbers; a third token makes the review fail. Stricter than the original's `float()`: each must be
    plain ASCII digits within 0..10 ("80 60", "nan", "1e1", "-1" and full-width digits fail), and a review
    that names another scale ("on a scale of 100") fails, so a score is never read against the wrong scale.
    """
    if not review or not names_only_scale(review, SCORE_MAX):
        return None
    tokens = review.split("\n")[0].replace(",", " ").split(" ")
    if len(tokens) != 2 or not all(_SCORE.fullmatch(t) for t in tokens):
        return None
    scores = float(tokens[0]), float(tokens[1])
    return scores if all(0 <= x <= SCORE_MAX for x in scores) else None


def relative_scores(
    pairs: Sequence[tuple[float, float] | None], categories: Sequence[str], include_failed: bool = False
) -> dict:
    """Relative score per category and "all": mean(model) / mean(reference) * 100, rounded to 1 decimal.

    Also reports mean(reference) * 10 and mean(model) * 10 (as summarize_gpt_review.py prints) and the
    number of failed reviews. `pairs[i]` is None for a failed review.
    """
    if len(pairs) != len(categories):
        raise ValueError(f"{len(pairs)} reviews but {len(categories)} categories")
    groups: dict[str, list[tuple[float, float]]] = {"all": []}
    failed: dict[str, int] = {"all": 0}
    for pair, cat in zip(pairs, categories, strict=True):
        groups.setdefault(cat, [])
        failed.setdefault(cat, 0)
        if pair is None:
            failed[cat] += 1
            failed["all"] += 1
            if not include_failed:
                continue
            pair = (-1.0, -1.0)
        groups[cat].append(pair)
        groups["all"].append(pair)
    out = {}
    for cat, items in groups.items():
        ref = sum(p[0] for p in items) / len(items) if items else 0.0
        model = sum(p[1] for p in items) / len(items) if items else 0.0
        out[cat] = {
            "relative": round(100 * model / ref, 1) if ref else 0.0,
            "reference": round(10 * ref, 1),
            "model": round(10 * model, 1),
            "n": len(items),
            "n_failed": failed[cat],
        }
    return out
