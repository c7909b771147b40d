"""Free text -> mentioned objects (category, colour, count, size, negation) and relations.

Used by the world judge, the describer, the renderer (`text_to_scene`: the world's text-to-image model is
`render(text_to_scene(text))`) and the world benchmarks. A left-to-right scan with no grammar to fail:
modifiers (count, size, colour, "no") accumulate until a category noun closes a mention; punctuation and
"and" close a clause; a colour or size left over at the end of a clause ("the ball is red") is a predicate
of the clause's last mention; "to the left of" / "above" / ... between two mentions is a relation.
Words outside the lexicon are ignored and returned in `unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ovip.config.world import COLOR_NAMES, SHAPE_NAMES, WorldConfig
from ovip.world.scene import GroupSpec, Scene, place
from ovip.world.text import COUNT_WORDS, SIZE_WORDS, lexicon, plural, words

_CLAUSE_END = {".", ",", "?", "!", ";", ":", "and"}
_RELATION_WORDS = {"left": "left", "right": "right", "above": "above", "below": "below", "under": "below"}


@dataclass(frozen=True)
class Mention:
    category: str
    color: str | None = None
    count: int | None = None  # None: not said ("the ball", "balls")
    size: str | None = None
    negated: bool = False  # "no ball", "not a ball", "without a ball"


@dataclass
class Parsed:
    mentions: list[Mention] = field(default_factory=list)
    relations: list[tuple[int, str, int]] = field(default_factory=list)  # (mention i, relation, mention j)
    answer: str | None = None  # the first stand-alone "yes" / "no" ("no, ..." or "..., so no.")
    answers: list[str] = field(default_factory=list)  # every stand-alone "yes" / "no", in order
    loose_colors: list[str] = field(default_factory=list)  # colours said of no object ("blue.")
    loose_counts: list[int] = field(default_factory=list)  # numbers said of no object ("three.")
    unknown: list[str] = field(default_factory=list)

    def objects(self) -> dict[str, Mention]:
        """One claim per category that the text says is present (merged over its mentions)."""
        out: dict[str, Mention] = {}
        for m in self.mentions:
            if m.negated:
                continue
            old = out.get(m.category)
            if old is None:
                out[m.category] = m
            else:
                count = max((c for c in (old.count, m.count) if c is not None), default=None)
                out[m.category] = Mention(m.category, old.color or m.color, count, old.size or m.size)
        return out

    def negated(self) -> set[str]:
        """Categories the text says are absent (and never says are present)."""
        return {m.category for m in self.mentions if m.negated} - set(self.objects())

    def category_relations(self) -> list[tuple[str, str, str]]:
        return [(self.mentions[i].category, rel, self.mentions[j].category) for i, rel, j in self.relations]


@lru_cache(maxsize=16)
def _vocab(categories: tuple[str, ...], colors: tuple[str, ...]):
    nouns = {}
    for c in categories:
        nouns[c] = nouns[plural(c)] = c
    return nouns, set(colors), set(lexicon(categories, colors)) | {"!", ";", ":", "without", "under"}


def parse(text: str, categories=SHAPE_NAMES, colors=COLOR_NAMES) -> Parsed:
    """Parse free text; by default every category and colour the renderer knows is recognised."""
    nouns, color_set, known = _vocab(tuple(categories), tuple(colors))
    out = Parsed()
    toks = words(text)
    count = size = color = None
    negated = False
    pending_rel: tuple[int, str] | None = None
    clause_last: int | None = None
    article = False  # the pending count is only "a" / "an"

    def end_clause():
        nonlocal count, size, color, negated, clause_last
        if clause_last is not None and (color or size):  # predicate: "the ball is red", "the tree is small"
            m = out.mentions[clause_last]
            if not m.negated:
                out.mentions[clause_last] = Mention(m.category, m.color or color, m.count, m.size or size)
        elif clause_last is None:
            out.loose_colors += [color] if color else []
            out.loose_counts += [count] if count is not None and not negated and not article else []
        count = size = color = None
        negated = False
        clause_last = None

    for k, w in enumerate(toks):
        nxt = toks[k + 1] if k + 1 < len(toks) else None
        if w in _CLAUSE_END:
            end_clause()
        elif w in ("yes", "no") and (nxt is None or nxt in _CLAUSE_END):
            out.answers.append(w)
            out.answer = out.answer or w
        elif w in ("no", "not", "without"):
            negated = True
        elif w in nouns:
            cat = nouns[w]
            out.mentions.append(Mention(cat, color, count, size, negated))
            idx = len(out.mentions) - 1
            if pending_rel is not None and pending_rel[0] != idx:
                out.relations.append((pending_rel[0], pending_rel[1], idx))
                pending_rel = None
            count = size = color = None
            negated = False
            clause_last = idx
        elif w in COUNT_WORDS:
            count, article = COUNT_WORDS[w], w in ("a", "an")
        elif w.isdigit():
            count, article = int(w), False
        elif w in SIZE_WORDS:
            size = w
        elif w in color_set:
            color = w
        elif w in _RELATION_WORDS:
            if clause_last is not None:
                pending_rel = (clause_last, _RELATION_WORDS[w])
        elif w not in known:
            out.unknown.append(w)
    end_clause()
    return out


def text_to_scene(text: str, cfg: WorldConfig, seed: int = 0) -> tuple[Scene, Parsed]:
    """The world's text-to-image model, text half: a scene in which `text` is true (negations kept out).

    Unsaid colours, sizes and counts are drawn from `seed`; relations between single objects are honoured.
    """
    parsed = parse(text, cfg.categories, cfg.colors)
    claims = parsed.objects()
    cats = list(claims)
    specs = [
        GroupSpec(m.category, m.color if m.color in cfg.colors else None, m.size, m.count)
        for m in claims.values()
    ]
    rels = [
        (cats.index(a), r, cats.index(b))
        for a, r, b in parsed.category_relations()
        if a in claims and b in claims and a != b
    ]
    rng = np.random.default_rng(seed)
    return place(specs, cfg, rng, rels), parsed
