"""AMBER's language components, pluggable (AMBER's inference.py: noun extraction and synonym matching).

The official scorer uses NLTK (tokenizer, POS tagger, WordNet lemmatizer) to extract nouns and spaCy
en_core_web_lg word vectors for near-synonyms (similarity > 0.8). Neither's data is on PyPI, so
`default_extractor` / `default_matcher` use them only when they load, else the built-in
`VocabularyNounExtractor` and `ExactMatcher`. Each component has a `name` that the summary records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class NounExtractor(Protocol):
    """Step 1: the (lemmatized) noun mentions of a response, in order, duplicates kept."""

    name: str

    def __call__(self, text: str) -> list[str]: ...


class Matcher(Protocol):
    """Steps 4.4-4.5: are `noun` and `word` near-synonyms (spaCy: similarity > 0.8)?"""

    name: str

    def similar(self, noun: str, word: str) -> bool: ...


_TOKEN = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")  # keeps "e-book", "air-conditioning" whole, as word_tokenize
_IRREGULAR = {
    "men": "man", "women": "woman", "children": "child", "people": "people", "feet": "foot", "teeth": "tooth",
    "mice": "mouse", "geese": "goose", "leaves": "leaf", "knives": "knife", "wolves": "wolf", "shelves": "shelf",
    "loaves": "loaf", "halves": "half", "calves": "calf", "wives": "wife", "scarves": "scarf", "oxen": "ox",
}  # fmt: skip


def singular(word: str, vocabulary: frozenset[str] | set[str]) -> str:
    """Plural normalisation standing in for WordNet's noun lemmatizer.

    A word already in the vocabulary is kept ("chopsticks", "glass"), irregular plurals are mapped
    (WordNet maps "leaves" to "leaf", which is not in AMBER's vocabulary, so neither do we), then the
    suffix rules -ies>-y, -ves>-f/-fe, -es, -s are tried and the first form in the vocabulary wins.
    Case is kept, as WordNet keeps "Dogs" (the official scorer does not lowercase either).
    """
    if word in vocabulary:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    candidates = []
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("ves"):
        candidates += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        candidates.append(word[:-1])
    return next((c for c in candidates if c in vocabulary), word)


@dataclass(frozen=True)
class VocabularyNounExtractor:
    """Built-in extractor: every token whose singular form is an AMBER object word counts as a noun.

    Without a POS tagger, verbs and adjectives spelled like an object word ("watch", "light") are
    counted too; AMBER lists several of these as global safe words, which limits the damage.
    """

    vocabulary: frozenset[str]
    name: str = "builtin-vocabulary"

    def __call__(self, text: str) -> list[str]:
        return [singular(t, self.vocabulary) for t in _TOKEN.findall(text)]


@dataclass(frozen=True)
class NltkNounExtractor:
    """The official step 1: word_tokenize, pos_tag, keep NN*, WordNetLemmatizer().lemmatize (noun)."""

    name: str = "nltk"

    def __call__(self, text: str) -> list[str]:
        import nltk
        from nltk.stem import WordNetLemmatizer

        lemmatizer = WordNetLemmatizer()
        tagged = nltk.pos_tag(nltk.word_tokenize(text))
        return [lemmatizer.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]


def nltk_extractor() -> NltkNounExtractor | None:
    """NLTK's extractor if nltk imports and its punkt / tagger / wordnet data work, else None."""
    try:
        extractor = NltkNounExtractor()
        extractor("Two dogs sit on the grass.")  # raises LookupError when a data package is missing
        return extractor
    except Exception:
        return None


def default_extractor(vocabulary: frozenset[str]) -> NounExtractor:
    return nltk_extractor() or VocabularyNounExtractor(vocabulary)


@dataclass(frozen=True)
class ExactMatcher:
    """Fallback near-synonym test: equality only. The association lists of relation.json are still
    applied, because the protocol puts them among the safe / hallu words (step 3)."""

    name: str = "exact"

    def similar(self, noun: str, word: str) -> bool:
        return noun == word


class VectorMatcher:
    """cosine(vector(noun), vector(word)) > threshold (strict, as AMBER), vectors cached per word.

    `vector` returns None for a word without a vector; the similarity is then 0, as spaCy's.
    """

    def __init__(
        self, vector: Callable[[str], Sequence[float] | None], threshold: float = 0.8, name: str = "vectors"
    ):
        self.vector, self.threshold, self.name = vector, threshold, name
        self._cache: dict[str, tuple[Sequence[float], float] | None] = {}

    def _unit(self, word: str):
        if word not in self._cache:
            v = self.vector(word)
            norm = math.sqrt(sum(x * x for x in v)) if v is not None else 0.0
            self._cache[word] = (v, norm) if norm > 0 else None
        return self._cache[word]

    def similar(self, noun: str, word: str) -> bool:
        a, b = self._unit(noun), self._unit(word)
        if a is None or b is None:
            return False
        return sum(x * y for x, y in zip(a[0], b[0], strict=True)) / (a[1] * b[1]) > self.threshold


def spacy_matcher(model: str = "en_core_web_lg", threshold: float = 0.8) -> VectorMatcher | None:
    """spaCy document vectors (mean of token vectors, as `Doc.similarity`), or None if unavailable."""
    try:
        import spacy

        nlp = spacy.load(model)
    except Exception:
        return None

    def vector(word: str):
        doc = nlp(word)
        return list(doc.vector) if doc.has_vector else None

    return VectorMatcher(vector, threshold, name=f"spacy:{model}")


def default_matcher(threshold: float = 0.8) -> Matcher:
    return spacy_matcher(threshold=threshold) or ExactMatcher()
