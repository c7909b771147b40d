"""Degeneration and fluency statistics of a set of answers: what a hallucination metric cannot see.

A policy can lower CHAIR while its text falls apart (repeating one safe phrase, running to the token limit),
and object-counting metrics do not notice. These statistics need no parser, so every benchmark reports them:

    words        mean answer length in words
    rep_3        mean over answers of the share of repeated word 3-grams within the answer
                 (1 - distinct / total 3-grams; "seq-rep-n" of Welleck et al., 2019, Neural Text Degeneration
                 with Unlikelihood Training), 0 for answers of fewer than 3 words
    distinct_1,  distinct word 1-grams / 2-grams over all answers divided by their total (Li et al., 2016,
    distinct_2   A Diversity-Promoting Objective Function for Neural Conversation Models)
    cut          share of answers that stopped at max_new_tokens without an end-of-sequence token
                 (None when the answers' generation is unknown, e.g. scored from a file)

All shares in %.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+|[^\w\s]")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repeated_share(tokens: list[str], n: int = 3) -> float:
    """Share (0-1) of the n-grams of one answer that repeat an earlier n-gram of the same answer."""
    grams = _ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def text_stats(answers: Sequence[str], cut: Sequence[bool | None] | None = None) -> dict:
    """The statistics of the module docstring over `answers` (and their `cut` flags, when known)."""
    tokens = [_words(a) for a in answers]
    n = len(answers)
    words = [[t for t in ts if t[0].isalnum()] for ts in tokens]
    out: dict = {
        "words": sum(map(len, words)) / n if n else 0.0,
        "rep_3": 100.0 * sum(repeated_share(w) for w in words) / n if n else 0.0,
    }
    for k in (1, 2):
        grams = [g for w in words for g in _ngrams(w, k)]
        out[f"distinct_{k}"] = 100.0 * len(set(grams)) / len(grams) if grams else 0.0
    known = [c for c in (cut or []) if c is not None]
    out["cut"] = 100.0 * sum(known) / len(known) if cut is not None and len(known) == n and n else None
    return out
