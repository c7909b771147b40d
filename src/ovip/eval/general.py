"""General-capability scorers and General Acc_Dif (paper §3.2, Table 2 "General Acc Dif", Table 8).

Acc_Dif is the *sum* over the four general benchmarks of (accuracy - baseline accuracy), in accuracy
points: e.g. OViP 7B in Table 8 is (62.8-62.5)+(34.07-33.27)+(55.2-55.4)+(57.56-57.58) = +0.88. OViP's
lookup.py also sums (the authors' evaluation code).

The per-item scorers follow the s-vco / LLaVA graders OViP uses (§6), including their quirks (noted
per function). All are pure functions over strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

GENERAL_KEYS = ("cvbench", "mmstar", "realworldqa", "textvqa")

# Baseline accuracies of Table 8 (LLaVA-1.5-7B / -13B), the reference point of Acc_Dif.
GENERAL_BASELINES = {
    "llava-1.5-7b": {"cvbench": 62.5, "mmstar": 33.27, "realworldqa": 55.4, "textvqa": 57.58},
    "llava-1.5-13b": {"cvbench": 61.6, "mmstar": 33.40, "realworldqa": 55.4, "textvqa": 61.78},
}


def acc_dif(scores: Mapping[str, float], base: Mapping[str, float]) -> float:
    """General Acc_Dif = sum_b (scores[b] - base[b]) over the benchmarks of `base` (Table 8)."""
    return sum(scores[k] - base[k] for k in base)


def accuracy(correct: Sequence[bool]) -> float:
    """% correct; 0.0 for no items."""
    return 100.0 * sum(correct) / len(correct) if correct else 0.0


_STRIP_MC = re.compile(r"[\(\)\s\.]")
_LETTER_ONLY = "answer directly with only the letter of the correct option and nothing else"


def realworldqa_correct(prompt: str, answer: str, response: str) -> bool:
    """RealWorldQA rule grader: lowercase, drop "(", ")", whitespace and "." from both sides, compare.

    For the letter questions (the prompt asks for "only the letter") only the first 4 characters of the
    response are used, so "(B) a car" counts as "b" but "B. a car" does not.
    """
    text = response.strip().lower()
    if _LETTER_ONLY in prompt.lower():
        text = text[:4]
    return _STRIP_MC.sub("", text) == _STRIP_MC.sub("", answer.strip().lower())


def mmstar_correct(answer: str, response: str) -> bool:
    """MMStar rule grader: the cleaned response (lowercase; "(", ")", whitespace, "." -> space; stripped)
    must start with the lowercased answer letter. Quirk kept: "a cat" is correct for answer "A"."""
    return _STRIP_MC.sub(" ", response.lower()).strip().startswith(answer.strip().lower())


def cvbench_correct(answer: str, response: str) -> bool:
    """CV-Bench rule grader: first 4 characters of the lowercased response, without "(", ")" and
    whitespace, must equal the answer without them ("(C)" -> "c")."""
    clean = re.compile(r"[\(\)\s]")
    return clean.sub("", response.strip().lower()[:4]) == clean.sub("", answer.strip().lower())


def cvbench_combined(acc_by_source: Mapping[str, float]) -> float:
    """Official CV-Bench accuracy: ((ADE20K + COCO) / 2 + Omni3D) / 2."""
    return ((acc_by_source["ADE20K"] + acc_by_source["COCO"]) / 2 + acc_by_source["Omni3D"]) / 2


# --- TextVQA: VQA soft accuracy with the EvalAI answer normalisation (LLaVA eval_textvqa / m4c) ---

_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = {"a", "an", "the"}
# A subset of EvalAI's contraction table: the forms that occur in short answers.
_CONTRACTIONS = {
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "isnt": "isn't",
    "its": "it's",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "theres": "there's",
    "wasnt": "wasn't",
    "werent": "weren't",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "youre": "you're",
    "im": "i'm",
    "ive": "i've",
    "lets": "let's",
}
_PUNCT = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_NUM = re.compile(r"(\d)(,)(\d)")


def normalize_vqa_answer(text: str) -> str:
    """EvalAI normalisation: lowercase, punctuation, periods not in numbers, number words, articles,
    contractions (a subset of EvalAI's table)."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's")
    text = text.replace("\n", " ").replace("\t", " ").strip()
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA_NUM.search(text):
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    text = _PERIOD.sub("", text)
    words = [_NUMBERS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def vqa_soft_accuracy(prediction: str, gt_answers: Sequence[str]) -> float:
    """VQA accuracy in [0, 1]: the mean over the 10 leave-one-out subsets of min(1, #matches / 3)."""
    pred = normalize_vqa_answer(prediction)
    gts = [normalize_vqa_answer(a) for a in gt_answers]
    if not gts:
        return 0.0
    scores = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1 :]
        scores.append(min(1.0, sum(a == pred for a in others) / 3))
    return sum(scores) / len(scores)


# --- One benchmark's summary from its questions and the answers (the scoring of `ovip eval textvqa ...`) ---

CVBENCH_SOURCES = ("ADE20K", "COCO", "Omni3D")


def _by(keys: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for key, value in zip(keys, values, strict=True):
        groups.setdefault(key, []).append(value)
    return {k: 100.0 * sum(v) / len(v) for k, v in sorted(groups.items())}


def score_general(benchmark: str, records: Sequence[Mapping], answers: Mapping[str, str]) -> dict:
    """Summary of one general benchmark: `records` are the questions.jsonl lines ({"id", "question",
    "answer" | "answers", ["category"], ["source"]}), `answers` {str(id): response}; only answered
    records are scored.

    accuracy (%): TextVQA the mean VQA soft accuracy; RealWorldQA and MMStar % correct; CV-Bench the
    official combined score ((ADE20K + COCO) / 2 + Omni3D) / 2 when all three sources are answered, else
    the plain % correct (`accuracy_kind` says which). `dif_vs` is accuracy minus each Table 8 baseline:
    the four benchmarks' `dif_vs` summed is General Acc_Dif.
    """
    if benchmark not in GENERAL_KEYS:
        raise ValueError(f"unknown general benchmark {benchmark!r}; choose one of {', '.join(GENERAL_KEYS)}")
    field = "answers" if benchmark == "textvqa" else "answer"
    scored = [r for r in records if str(r["id"]) in answers]
    bad = [r["id"] for r in scored if field not in r or (field == "answers") != isinstance(r[field], list)]
    if bad:
        kind = "a list 'answers'" if field == "answers" else "an 'answer' string"
        raise ValueError(
            f"{benchmark}: {len(bad)} questions lack {kind} (ids: {', '.join(map(str, bad[:20]))})"
        )
    if benchmark == "cvbench":
        no_source = [r["id"] for r in scored if r.get("source") not in CVBENCH_SOURCES]
        if no_source:
            raise ValueError(
                f"cvbench: {len(no_source)} questions have no 'source' among "
                f"{', '.join(CVBENCH_SOURCES)} (ids: {', '.join(map(str, no_source[:20]))})"
            )
    values: list[float] = []
    for r in scored:
        response = answers[str(r["id"])]
        if benchmark == "textvqa":
            values.append(vqa_soft_accuracy(response, r["answers"]))
        elif benchmark == "realworldqa":
            values.append(float(realworldqa_correct(r["question"], r["answer"], response)))
        elif benchmark == "mmstar":
            values.append(float(mmstar_correct(r["answer"], response)))
        else:
            values.append(float(cvbench_correct(r["answer"], response)))
    out: dict = {
        "benchmark": benchmark,
        "n": len(scored),
        "accuracy": 100.0 * sum(values) / len(values) if values else 0.0,
    }
    if benchmark == "cvbench":
        by_source = _by([r["source"] for r in scored], values)
        out["by_source"] = by_source
        if all(s in by_source for s in CVBENCH_SOURCES):
            out["accuracy"], out["accuracy_kind"] = cvbench_combined(by_source), "combined"
        else:
            out["accuracy_kind"] = (
                "mean (sources missing: " + ", ".join(s for s in CVBENCH_SOURCES if s not in by_source) + ")"
            )
    elif any("category" in r for r in scored):
        out["by_category"] = _by([str(r.get("category", "")) for r in scored], values)
    out["dif_vs"] = {name: out["accuracy"] - base[benchmark] for name, base in GENERAL_BASELINES.items()}
    return out
