"""Benchmark arithmetic shared by the real benchmarks and the synthetic world.

Pure functions over already-resolved objects and answers: no file, model or judge in here, and only
the standard library, so `ovip.world` imports the very same code ("the same metric code serves the
real and the world benchmarks; don't fork it").

* `object_metrics` — AMBER generative CHAIR / Cover / Hal / Cog (Wang et al., 2023, AMBER; its inference.py), the
  paper's generative F1 (Appendix A.2), and Object HalBench CHAIR_r / CHAIR_i / recall / F1 (§3.2).
* `yes_no_metrics` — AMBER discriminative accuracy / precision / recall / F1 with "no" positive (§1.4).
* `hri` — the Hallucination Reduction Index, Eq. 7, with the presets of Appendix A.1.2 / A.1.3.

All rates are percentages (0-100). An empty denominator gives 0.0 instead of AMBER's 0.001 start
value (metrics.txt); the two agree to the printed decimal on any non-trivial benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else 0.0


def harmonic_f1(a: float, b: float) -> float:
    """2ab/(a+b), 0 when both are 0; inputs and output on the same scale (here %)."""
    return 2.0 * a * b / (a + b) if (a + b) else 0.0


# ---------------------------------------------------------------------------------------------------
# Objects in free-form descriptions (AMBER generative, CHAIR, Object HalBench)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectMetrics:
    """Object-hallucination metrics over a set of responses; rates in %.

    Counts (micro-averaged over all responses, as AMBER's counters in inference.py):
      n_responses, n_mentions (object mentions considered), n_hallucinated_mentions,
      n_hallucinated_responses (>= 1 hallucinated mention), n_responses_with_mentions,
      n_truth (ground-truth objects), n_covered (of those, mentioned),
      n_candidates (AMBER "hallu" objects), n_candidates_mentioned.

    Rates:
      chair   = n_hallucinated_mentions / n_mentions          (AMBER CHAIR: mention level, micro)
      cover   = n_covered / n_truth                           (AMBER Cover = object recall)
      hal     = n_hallucinated_responses / n_responses        (AMBER Hal; = original CHAIR_s)
      cog     = n_candidates_mentioned / n_candidates         (AMBER Cog; None without candidates)
      f1      = harmonic mean of (100 - chair) and cover      (paper A.2, OViP lookup.py::amber_gen)
      chair_r = n_hallucinated_responses / n_responses_with_mentions
                                                              (Object HalBench "Response Hall",
                                                               RLAIF-V CHAIRs_refine; Table 2 Chair_r)
      chair_i = n_hallucinated_mentions / n_mentions          (= chair; CHAIR_i / "Object Hall")
      recall, precision = cover, 100 - chair_i; object_f1 = harmonic mean (Object HalBench ObjF1)
    """

    n_responses: int
    n_mentions: int
    n_hallucinated_mentions: int
    n_hallucinated_responses: int
    n_responses_with_mentions: int
    n_truth: int
    n_covered: int
    n_candidates: int
    n_candidates_mentioned: int
    chair: float
    cover: float
    hal: float
    cog: float | None
    f1: float
    chair_r: float
    chair_i: float
    recall: float
    precision: float
    object_f1: float

    def as_dict(self) -> dict:
        return asdict(self)


def object_metrics_from_counts(
    *,
    n_responses: int,
    n_mentions: int,
    n_hallucinated_mentions: int,
    n_hallucinated_responses: int,
    n_responses_with_mentions: int,
    n_truth: int,
    n_covered: int,
    n_candidates: int = 0,
    n_candidates_mentioned: int = 0,
) -> ObjectMetrics:
    """Turn raw counters into `ObjectMetrics`.

    Benchmarks whose matching rule is richer than set membership (AMBER's global safe words and
    association lists, §1.3 step 4) resolve mentions themselves and hand their counters here, so the
    arithmetic lives in one place.
    """
    chair = _pct(n_hallucinated_mentions, n_mentions)
    cover = _pct(n_covered, n_truth)
    precision = 100.0 - chair if n_mentions else 0.0
    return ObjectMetrics(
        n_responses=n_responses,
        n_mentions=n_mentions,
        n_hallucinated_mentions=n_hallucinated_mentions,
        n_hallucinated_responses=n_hallucinated_responses,
        n_responses_with_mentions=n_responses_with_mentions,
        n_truth=n_truth,
        n_covered=n_covered,
        n_candidates=n_candidates,
        n_candidates_mentioned=n_candidates_mentioned,
        chair=chair,
        cover=cover,
        hal=_pct(n_hallucinated_responses, n_responses),
        cog=_pct(n_candidates_mentioned, n_candidates) if n_candidates else None,
        # AMBER F1 uses 100 - CHAIR even when nothing was mentioned (CHAIR is 0 there), as lookup.py does.
        f1=harmonic_f1(100.0 - chair, cover),
        chair_r=_pct(n_hallucinated_responses, n_responses_with_mentions),
        chair_i=chair,
        recall=cover,
        precision=precision,
        object_f1=harmonic_f1(precision, cover),
    )


def object_metrics(
    mentioned: Sequence[Collection[str]],
    truth: Sequence[Collection[str]],
    hallucination_candidates: Sequence[Collection[str]] | None = None,
) -> ObjectMetrics:
    """Object metrics of responses whose mentions are already mapped to the truth vocabulary.

    Args:
      mentioned: per response, the objects it mentions. A `set` counts each object once per response
        (Object HalBench deduplicates per response); a `list` keeps repeats, and AMBER counts every
        mention (§1.3 step 1: "duplicates are kept"), so pass lists to mirror AMBER's CHAIR.
      truth: per response, the objects present in the image (deduplicated here).
      hallucination_candidates: per response, AMBER's "hallu" list of likely hallucinations (for Cog).

    A mention is hallucinated iff it is not in that response's truth set. CHAIR is micro-averaged over
    all mentions of all responses, i.e. sum(hallucinated mentions) / sum(mentions), exactly as AMBER's
    chair_score / chair_num counters (not a mean of per-response rates). Cover is likewise
    sum(covered truth objects) / sum(truth objects). Synonym / association resolution is the caller's job
    (see `ovip.eval.amber` and `ovip.eval.chair`).
    """
    if len(mentioned) != len(truth):
        raise ValueError(f"mentioned has {len(mentioned)} responses but truth has {len(truth)}")
    if hallucination_candidates is not None and len(hallucination_candidates) != len(truth):
        raise ValueError("hallucination_candidates must have one entry per response")
    n_mentions = n_hal_mentions = n_hal_responses = n_with = 0
    n_truth = n_covered = n_cand = n_cand_mentioned = 0
    for i, (mention, gt) in enumerate(zip(mentioned, truth, strict=True)):
        gt_set, mention_set = set(gt), set(mention)
        bad = sum(1 for m in mention if m not in gt_set)
        n_mentions += len(mention)
        n_hal_mentions += bad
        n_hal_responses += bad > 0
        n_with += len(mention) > 0
        n_truth += len(gt_set)
        n_covered += len(gt_set & mention_set)
        if hallucination_candidates is not None:
            cand = set(hallucination_candidates[i])
            n_cand += len(cand)
            n_cand_mentioned += len(cand & mention_set)
    return object_metrics_from_counts(
        n_responses=len(truth),
        n_mentions=n_mentions,
        n_hallucinated_mentions=n_hal_mentions,
        n_hallucinated_responses=n_hal_responses,
        n_responses_with_mentions=n_with,
        n_truth=n_truth,
        n_covered=n_covered,
        n_candidates=n_cand,
        n_candidates_mentioned=n_cand_mentioned,
    )


# ---------------------------------------------------------------------------------------------------
# Yes / no questions (AMBER discriminative)
# ---------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+")


def normalize_yes_no(text: str) -> str | None:
    """Map a free-text answer to "yes" / "no", or None when it holds neither.

    Rule: lowercase, split into alphabetic words, return the first word that is exactly "yes" or "no".
    Whole words only, so "eyes" or "nobody" never count (lmms-eval's substring test would). The
    official AMBER scorer compares exact "Yes"/"No" strings and OViP's converter is not public
    (the official scripts leave it unspecified), so this rule is ours; with max_new_tokens=10 the first such
    word is almost always the answer.
    """
    if not isinstance(text, str):
        return None
    for word in _WORD.findall(text.lower()):
        if word in ("yes", "no"):
            return word
    return None


@dataclass(frozen=True)
class BinaryMetrics:
    """Binary-answer metrics with `positive` as the positive class; rates in %.

    accuracy  = correct / n
    precision = #(answered positive and label positive) / #(answered positive)
    recall    = #(answered positive and label positive) / #(label positive)
    f1        = 2PR / (P + R)   (exact; `ovip.eval.amber` also reports AMBER's rounded variant)
    An invalid prediction (not yes/no) is wrong and is not a positive answer (AMBER §1.4).
    """

    n: int
    n_correct: int
    n_invalid: int
    n_predicted_positive: int
    n_label_positive: int
    n_true_positive: int
    positive: str
    accuracy: float
    precision: float
    recall: float
    f1: float

    def as_dict(self) -> dict:
        return asdict(self)


def yes_no_metrics(
    predictions: Sequence[str | None], labels: Sequence[str], positive: str = "no"
) -> BinaryMetrics:
    """AMBER discriminative arithmetic (AMBER's inference.py), "no" positive by default.

    `predictions` should already be "yes" / "no" (e.g. from `normalize_yes_no`); they and `labels` are
    compared after strip + lowercase, anything else (None included) counts as invalid.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    positive = positive.lower()
    correct = invalid = pred_pos = label_pos = tp = 0
    for pred, label in zip(predictions, labels, strict=True):
        p = pred.strip().lower() if isinstance(pred, str) else None
        y = label.strip().lower()
        if p not in ("yes", "no"):
            invalid += 1
            p = None
        correct += p == y
        pred_pos += p == positive
        label_pos += y == positive
        tp += p == positive and y == positive
    precision, recall = _pct(tp, pred_pos), _pct(tp, label_pos)
    return BinaryMetrics(
        n=len(labels),
        n_correct=correct,
        n_invalid=invalid,
        n_predicted_positive=pred_pos,
        n_label_positive=label_pos,
        n_true_positive=tp,
        positive=positive,
        accuracy=_pct(correct, len(labels)),
        precision=precision,
        recall=recall,
        f1=harmonic_f1(precision, recall),
    )


# ---------------------------------------------------------------------------------------------------
# Hallucination Reduction Index (Appendix A.1, Eq. 7)
# ---------------------------------------------------------------------------------------------------

# a_1..a_5 of Eq. 7, in the paper's order (A.1.1).
HRI_KEYS = ("amber_gen_f1", "mmhal_score", "objecthal_f1", "llava_bench", "amber_dis_f1")


def _row(*values: float) -> dict[str, float]:
    return dict(zip(HRI_KEYS, values, strict=True))


_BASE_7B = _row(65.01, 1.90, 72.40, 57.20, 85.5)

# (base, reference) per setting. A.1.2: 7B and 13B use OViP_2ep as reference, except the 13B
# ObjectHal reference which is set to 79.0. A.1.3: loss ablation uses the best value per benchmark.
# A.1.4 (online vs offline) and A.1.5 (further study) reuse the 7B main-results preset.
HRI_PRESETS: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "llava-1.5-7b": (_BASE_7B, _row(67.12, 2.65, 74.18, 60.90, 87.4)),
    "llava-1.5-13b": (_row(65.99, 2.24, 76.73, 62.60, 89.1), _row(68.98, 2.57, 79.00, 67.90, 90.2)),
    "ablation-loss-7b": (_BASE_7B, _row(68.57, 2.70, 74.14, 64.10, 87.20)),
}


def hri(scores: Mapping[str, float], base: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """HRI = 2 * sum_i (a_i - a_i^base) / (a_i^ref - a_i^base) over the five `HRI_KEYS` (Eq. 7).

    Scores are on each benchmark's own scale (F1 in %, MMHal 0-6, LLaVA-Bench relative score in %).
    The paper prints HRI rounded to 2 decimals. Raises KeyError when a key is missing and ValueError
    when a reference equals its base.
    """
    total = 0.0
    for key in HRI_KEYS:
        span = reference[key] - base[key]
        if span == 0:
            raise ValueError(f"HRI reference equals base for {key!r}")
        total += (scores[key] - base[key]) / span
    return 2.0 * total
