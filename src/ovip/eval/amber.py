"""AMBER generative (CHAIR / Cover / Hal / Cog) and discriminative (F1) scoring (paper §3.2, App. A.2).

AMBER ids 1..1004 are generative ("Describe this image."), 1005..15220 yes/no questions.

Follows the official `inference.py` of junyangwang0410/AMBER step by step :
nouns are extracted from each description, kept only if they are in the AMBER vocabulary (keys and values
of relation.json), then resolved against the image's `truth` / `hallu` lists with their association words,
the 9 global safe words, and a near-synonym test. Arithmetic is `ovip.eval.metrics`.

The two language components (`ovip.eval.amber_text`) are pluggable because their usual sources (NLTK
data, spaCy en_core_web_lg) are not on PyPI (§10): `default_extractor` uses NLTK when it is importable *and* its data is installed,
else `VocabularyNounExtractor`; `default_matcher` uses spaCy vectors when en_core_web_lg loads, else
`ExactMatcher`. Every summary names the pair that produced it. With the fallbacks, numbers are close to
but not identical with the official scorer (no POS tagging, no word-vector synonyms).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ovip.eval import layout
from ovip.eval.amber_text import (
    Matcher,
    NounExtractor,
    default_extractor,
    default_matcher,
)
from ovip.eval.metrics import BinaryMetrics, normalize_yes_no, object_metrics_from_counts, yes_no_metrics


@dataclass(frozen=True)
class AmberData:
    """The AMBER ground truth. `annotations[id - 1]["id"] == id` (checked at load)."""

    annotations: list[dict]
    association: dict[str, list[str]]
    global_safe_words: frozenset[str]

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """The 418 object words: relation.json keys and values (the noun filter of step 2)."""
        return frozenset(self.association) | {w for ws in self.association.values() for w in ws}

    def entry(self, id_: int) -> dict:
        if not 1 <= id_ <= len(self.annotations):
            raise KeyError(f"AMBER has no id {id_}")
        return self.annotations[id_ - 1]


def load_amber(data_dir: str | Path) -> AmberData:
    """Read annotations.json, relation.json and safe_words.txt from `data_dir`: AMBER's repository, its
    data/ folder, or a folder holding the three files (`ovip.eval.layout.amber_root`)."""
    data_dir = layout.amber_root(data_dir)
    annotations = json.loads((data_dir / "annotations.json").read_text(encoding="utf-8"))
    for i, entry in enumerate(annotations):
        if entry["id"] != i + 1:
            raise ValueError(f"annotations.json entry {i} has id {entry['id']}, expected {i + 1}")
    association = json.loads((data_dir / "relation.json").read_text(encoding="utf-8"))
    # safe_words.txt has no trailing newline; one word per line.
    safe = frozenset(w.strip() for w in (data_dir / "safe_words.txt").read_text(encoding="utf-8").split("\n"))
    return AmberData(annotations, association, safe - {""})


def load_queries(data_dir: str | Path, task: str) -> list[dict]:
    """query_generative.json or query_discriminative.json: [{"id", "image", "query"}], found beside the
    annotations or in AMBER's data/query/ folder."""
    if task not in ("generative", "discriminative"):
        raise ValueError(f"task must be 'generative' or 'discriminative', got {task!r}")
    path = layout.amber_query(data_dir, task)
    if path is None:
        raise FileNotFoundError(
            f"AMBER's query_{task}.json is in neither {data_dir} nor its data/ or query/ "
            "folders (layouts: docs/evaluation.md)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------
# Generative
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerativeResult:
    """One description resolved by steps 2-4. `nouns` are the vocabulary nouns (duplicates kept);
    `hallucinated` the subset counted in CHAIR's numerator; the flags follow `truth` / `hallu` order."""

    id: int
    nouns: tuple[str, ...]
    hallucinated: tuple[str, ...]
    truth_covered: tuple[bool, ...]
    hallu_covered: tuple[bool, ...]


def _words_and_owners(objects: Sequence[str], association: Mapping[str, Sequence[str]]):
    """Step 3: association words of every object, then the objects; `owners[j]` is the object index that
    a match on slot j marks. A repeated object ("ship", "ship") owns only its first slot, as in AMBER."""
    words, owners = [], []
    for k, obj in enumerate(objects):
        words += association.get(obj, [])
        owners += [k] * len(association.get(obj, []))
    first = {}
    for k, obj in enumerate(objects):
        first.setdefault(obj, k)
    return words + list(objects), owners + [first[obj] for obj in objects]


def score_generative(
    id_: int, nouns: Sequence[str], entry: Mapping, data: AmberData, matcher: Matcher
) -> GenerativeResult:
    """Steps 2 and 4 for one response, given its extracted nouns and its annotation entry."""
    vocabulary = data.vocabulary
    kept = [n for n in nouns if n in vocabulary]
    safe_words, safe_owner = _words_and_owners(entry["truth"], data.association)
    ha_words, ha_owner = _words_and_owners(entry["hallu"], data.association)
    truth_flags = [False] * len(entry["truth"])
    hallu_flags = [False] * len(entry["hallu"])
    hallucinated = []
    for noun in kept:
        if noun in data.global_safe_words:  # 4.1: counted in the denominator, covers nothing
            continue
        if noun in safe_words:  # 4.2: first exact match covers its truth object
            truth_flags[safe_owner[safe_words.index(noun)]] = True
            continue
        if noun in ha_words:  # 4.3: Cog only; processing goes on
            hallu_flags[ha_owner[ha_words.index(noun)]] = True
        for j, word in enumerate(ha_words):  # 4.4: near-synonym of a hallu word -> Cog
            if matcher.similar(noun, word):
                hallu_flags[ha_owner[j]] = True
                break
        for j, word in enumerate(
            safe_words
        ):  # 4.5: near-synonym of a truth word -> covered, not hallucinated
            if matcher.similar(noun, word):
                truth_flags[safe_owner[j]] = True
                break
        else:
            hallucinated.append(noun)  # 4.6
    return GenerativeResult(id_, tuple(kept), tuple(hallucinated), tuple(truth_flags), tuple(hallu_flags))


def amber_generative(
    responses: Mapping[int, str],
    data: AmberData,
    extractor: NounExtractor | None = None,
    matcher: Matcher | None = None,
    details: bool = False,
) -> dict:
    """Score descriptions {id: text} (ids 1..1004) as AMBER -g does.

    Returns CHAIR / Cover / Hal / Cog rounded to 1 decimal as inference.py prints them, "F1" computed
    from those rounded CHAIR and Cover as OViP's lookup.py does (Table 2's AMB_gen F1), the unrounded
    `ObjectMetrics` under "exact", and the names of the extractor and matcher used.
    """
    extractor = extractor or default_extractor(data.vocabulary)
    matcher = matcher or default_matcher()
    results = []
    for id_, text in responses.items():
        entry = data.entry(id_)
        if entry["type"] != "generative":
            raise ValueError(f"AMBER id {id_} is not a generative query")
        results.append(score_generative(id_, extractor(text), entry, data, matcher))
    m = object_metrics_from_counts(
        n_responses=len(results),
        n_mentions=sum(len(r.nouns) for r in results),
        n_hallucinated_mentions=sum(len(r.hallucinated) for r in results),
        n_hallucinated_responses=sum(bool(r.hallucinated) for r in results),
        n_responses_with_mentions=sum(bool(r.nouns) for r in results),
        n_truth=sum(len(r.truth_covered) for r in results),
        n_covered=sum(sum(r.truth_covered) for r in results),
        n_candidates=sum(len(r.hallu_covered) for r in results),
        n_candidates_mentioned=sum(sum(r.hallu_covered) for r in results),
    )
    chair, cover = round(m.chair, 1), round(m.cover, 1)
    f1 = 2 * (100 - chair) * cover / ((100 - chair) + cover) if (100 - chair) + cover else 0.0
    summary = {
        "benchmark": "amber_gen", "n": len(results),
        "CHAIR": chair, "Cover": cover, "Hal": round(m.hal, 1), "Cog": round(m.cog or 0.0, 1),
        "F1": round(f1, 2), "exact": m.as_dict(),
        "noun_extractor": extractor.name, "matcher": matcher.name,
    }  # fmt: skip
    if details:
        summary["responses"] = [r.__dict__ for r in results]
    return summary


# ---------------------------------------------------------------------------------------------------
# Discriminative
# ---------------------------------------------------------------------------------------------------

# Annotation types per reported dimension (§1.4). The 689 "no" relation questions have type "relation".
DIMENSIONS = {
    "existence": ("discriminative-hallucination",),
    "attribute": ("discriminative-attribute-state", "discriminative-attribute-number",
                  "discriminative-attribute-action"),
    "state": ("discriminative-attribute-state",),
    "number": ("discriminative-attribute-number",),
    "action": ("discriminative-attribute-action",),
    "relation": ("discriminative-relation", "relation"),
}  # fmt: skip


def amber_f1(precision: float, recall: float, eps: float = 1e-4) -> float:
    """inference.py's F1: from P and R already rounded to 0.1 %, with eps in the denominator (1e-3 for
    existence), rounded to 1 decimal. Differs from the exact F1 by at most ~0.1."""
    p, r = round(precision, 1) / 100, round(recall, 1) / 100
    return round(2 * p * r / (p + r + eps) * 100, 1)


def _official(m: BinaryMetrics, eps: float) -> dict:
    return {
        "Accuracy": round(m.accuracy, 1),
        "Precision": round(m.precision, 1),
        "Recall": round(m.recall, 1),
        "F1": amber_f1(m.precision, m.recall, eps),
    }


def amber_discriminative(responses: Mapping[int, str], data: AmberData, normalize: bool = True) -> dict:
    """Score yes/no answers {id: text} (ids >= 1005) as AMBER -d does, "no" being positive.

    normalize=True maps free text with `normalize_yes_no`; normalize=False keeps the official rule that
    only the exact strings "Yes" / "No" count. Returns the overall block ("F1" is Table 2's AMB_dis F1),
    one block per dimension, each with n, n_invalid (answers that are neither yes nor no), the
    AMBER-printed numbers and the exact `BinaryMetrics`; a dimension with no answers has None for its
    numbers (a blank in the printed table).
    """
    preds, labels, types = [], [], []
    for id_, text in responses.items():
        entry = data.entry(id_)
        if entry["type"] == "generative":
            raise ValueError(f"AMBER id {id_} is a generative query, not a yes/no question")
        if normalize:
            preds.append(normalize_yes_no(text))
        else:
            preds.append({"Yes": "yes", "No": "no"}.get(text))
        labels.append(entry["truth"])
        types.append(entry["type"])

    def block(keep: Callable[[str], bool], eps: float = 1e-4) -> dict:
        idx = [i for i, t in enumerate(types) if keep(t)]
        m = yes_no_metrics([preds[i] for i in idx], [labels[i] for i in idx], positive="no")
        if (
            not idx
        ):  # no question of this dimension was answered: no number, rather than a 0.0 that reads as one
            return {"n": 0, "n_invalid": 0, **dict.fromkeys(("Accuracy", "Precision", "Recall", "F1"))}
        return {"n": m.n, "n_invalid": m.n_invalid, **_official(m, eps), "exact": m.as_dict()}

    summary = {"benchmark": "amber_dis", "normalized": normalize, **block(lambda t: True)}
    for name, dim_types in DIMENSIONS.items():
        summary[name] = block(lambda t, d=dim_types: t in d, 1e-3 if name == "existence" else 1e-4)
    return summary
