"""The world metrics as functions of per-item counts: what the paired bootstrap of `ovip experiment` resamples.

Each split's item records (`bench.evaluate_world_items`, fields in `bench.ITEM_FIELDS`) become a count table
[n, k] (`table`), and each metric is a function of that table's column sums (`METRICS`), so that it is the
summary's number on all items and a ratio of resampled sums under the bootstrap (`ovip.eval.paired`):

| metric              | split       | columns summed over the items                          | value                  |
| ------------------- | ----------- | ------------------------------------------------------ | ---------------------- |
| chair               | amber_gen   | hallucinated mentions, mentions                        | 100 x h / m            |
| cover               | amber_gen   | scene objects named, scene objects                     | 100 x c / t            |
| amber_gen_f1        | amber_gen   | (both)                                                 | F1(100 - CHAIR, Cover) |
| partner_rate        | amber_gen   | absent partners named, absent partners of a present    | 100 x named / baited   |
|                     |             | anchor (the trained co-occurrence priors)              |                        |
| objecthal_chair_r   | objecthal   | answers with a hallucinated object, answers naming one | 100 x h / a            |
| objecthal_f1        | objecthal   | objects named, hallucinated ones, scene objects        | F1(precision, recall)  |
| amber_dis_f1        | amber_dis   | "no" right, "no" predicted, "no" true                  | 200 tp / (pred + true) |
| mmhal_score         | mmhal       | rating (0-6), rated                                    | mean rating            |
| llava_bench         | llava_bench | judge on the answer, judge on the reference            | 100 x a / r            |

The last five are the a_i of HRI (Eq. 7; `HRI_INPUTS`). A judged item whose judge failed counts nothing, as in
the summary. The summary rounds MMHal to 3 and LLaVA-Bench to 1 decimal; these values are unrounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ovip.eval import bootstrap as bs

COLUMNS: dict[str, Callable[[dict], list[float]]] = {
    "amber_gen": lambda r: [
        len(r["hallucinated"]),
        len(r["mentions"]),
        len(r["covered"]),
        len(r["truth"]),
        len(r["partners_named"]),
        len(r["partners_baited"]),
    ],
    "objecthal": lambda r: [
        bool(r["hallucinated"]),
        bool(r["objects"]),
        len(r["objects"]),
        len(r["hallucinated"]),
        len(r["objects"]) - len(r["hallucinated"]),
        len(r["truth"]),
    ],
    "amber_dis": lambda r: [
        r["prediction"] == r["label"] == "no",
        r["prediction"] == "no",
        r["label"] == "no",
    ],
    "mmhal": lambda r: [0.0, 0.0] if r["judge_failed"] else [r["rating"], 1.0],
    "llava_bench": lambda r: [0.0, 0.0] if r["judge_failed"] else [r["judge_score"], r["reference_score"]],
}


def table(split: str, records: list[dict]) -> np.ndarray:
    """[n, k] the count table of a split's item records (columns: module docstring); a record without a
    field the split's metrics count is a ValueError naming the item and the field."""
    rows = []
    for i, record in enumerate(records):
        try:
            rows.append(COLUMNS[split](record))
        except KeyError as e:
            raise ValueError(f"{split} item {record.get('id', i)!r}: no field {e}") from None
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def _precision(s: np.ndarray) -> np.ndarray:
    """Object HalBench precision: 100 - CHAIR_i, 0 where nothing was named (as `object_metrics`)."""
    return np.where(s[..., 2] > 0, 100.0 - bs.ratio(3, 2)(s), 0.0)


def _dis_f1(s: np.ndarray) -> np.ndarray:
    den = s[..., 1] + s[..., 2]
    return np.where(den > 0, 200.0 * s[..., 0] / np.where(den > 0, den, 1), 0.0)


@dataclass(frozen=True)
class ItemMetric:
    split: str
    value: bs.Metric  # [..., k] column sums -> [...] metric values
    higher_is_better: bool


_CHAIR, _COVER = bs.ratio(0, 1), bs.ratio(2, 3)
METRICS: dict[str, ItemMetric] = {
    "chair": ItemMetric("amber_gen", _CHAIR, False),
    "cover": ItemMetric("amber_gen", _COVER, True),
    "amber_gen_f1": ItemMetric("amber_gen", bs.harmonic(bs.complement(_CHAIR), _COVER), True),
    "partner_rate": ItemMetric("amber_gen", bs.ratio(4, 5), False),
    "objecthal_chair_r": ItemMetric("objecthal", bs.ratio(0, 1), False),
    "objecthal_f1": ItemMetric("objecthal", bs.harmonic(_precision, bs.ratio(4, 5)), True),
    "amber_dis_f1": ItemMetric("amber_dis", _dis_f1, True),
    "mmhal_score": ItemMetric("mmhal", bs.ratio(0, 1, scale=1.0), True),
    "llava_bench": ItemMetric("llava_bench", bs.ratio(0, 1), True),
}
# Eq. 7's five a_i (the keys of `ovip.eval.metrics.HRI_KEYS`) are the metrics of the same names.
HRI_INPUTS = ("amber_gen_f1", "mmhal_score", "objecthal_f1", "llava_bench", "amber_dis_f1")


def point(name: str, records: list[dict]) -> float:
    """A metric on all of a split's item records (the summary's number, unrounded)."""
    metric = METRICS[name]
    return bs.point(table(metric.split, records), metric.value)
