"""The world's grammar: which texts are fluent English over the world's words, and what is wrong with the others.

The parser (`parse.py`) reads anything and never fails, which is what a judge of *content* needs. A judge of
*fluency* (Table 9's judge is an LLM, and no LLM calls "a yellow bell is a yellow bell and a red yes" a good
answer) and the degeneration metrics need the opposite: a strict acceptor. Every sentence the world's
templates write (`text.py`, both the policy's voice and the reference voice) is accepted, and so is plain
correct English outside them (an Oxford comma, "next to", digits, a list of clauses); anything else is not.

A text is split into sentences at ".", "?" and "!"; the unfinished tail (text after the last end mark) is read
like any sentence. A sentence may open with a verdict ("yes, ...", "no, ...") and close with one (", so yes").
What is left is split into units at the list connectors "," / "and" / ", and", and each unit is tagged word by
word and must match one unit pattern in full:

    NP     = (a | an | one | 1) [size] [colour] noun_sg         article agrees with the next word ("an orange")
           | (two | ... | five | 2..) [size] [colour] noun_pl  | [size] [colour] noun_pl   | the [size] [colour] noun
    REL    = to the left of | to the right of | above | below | under | next to | ...
    NP-REL = NP (REL NP)*                                       "a blue boat next to a yellow fish"
    units  = [the image shows | this picture contains | the picture has | i can see ...] NP-REL
             [in the picture] there is NP_sg | there are NP_pl | there is no noun | there are no nouns
             | there is nothing
             (the noun | it | NP_sg) is [not] (colour | size | size colour | REL NP) | (the nouns | they) are ...
             yes | no | colour | number | no noun
    (every unit may end "in the image" / "in the picture")

Defects (`defects`), the fluency half of the world judge and of the degeneration metrics:
    ungrammatical  what the grammar cannot read, each costing at least 1: a unit that matches no pattern costs
                   one per object noun it holds (at least 1), so a word salad costs more the more objects it
                   names; an empty unit ("and and", ", ,", an end mark with nothing before it as in "blue.."
                   or a run of dots) costs 1; a list whose last connector is a bare comma ("x, y") costs 1; a
                   unit without an object noun said again ("yes and yes", "it is green. it is green.") costs 1.
                   The unfinished tail is charged the same way as a complete sentence.
    truncated      the text ends inside a sentence (no final "." / "?" / "!"), as a cut-off answer does
    repeated       object mentions beyond the first for one category ("a box ... a box ... a box": 2)
    contradictions a category said in two colours, two counts or two sizes, said present and absent, two
                   different colours or numbers said of nothing ("it is green. it is red."), or "yes" and "no"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ovip.world.parse import Parsed
from ovip.world.text import SIZE_WORDS, plural, words

_ENDS = {".", "?", "!"}
_NUMBERS = {"two", "three", "four", "five"}

_ADJ = r"(?:Z )?(?:C )?"
_SG = rf"[DO] {_ADJ}[SF]"
_PL = rf"(?:M )?{_ADJ}[PF]"  # "two blue boats", "blue boats", "fish"
_NP = rf"(?:{_SG}|{_PL}|the {_ADJ}[SPF])"
_REL = r"(?:to the (?:left|right) of|on the (?:left|right) of|above|below|under|next to|beside|near)"
_NP_REL = rf"{_NP}(?: {_REL} {_NP})*"
_RELS = rf"(?: {_REL} {_NP})*"
_PRED = rf"(?:not )?(?:Z C|Z|C|{_REL} {_NP})"
_THERE = r"(?:in (?:the|this) (?:image|picture) )?there"
_UNITS = (
    rf"(?:(?:the|this) (?:image|picture) (?:shows|contains|has) |i can see )?{_NP_REL}",
    rf"{_THERE} is (?:{_SG}{_RELS}|no {_ADJ}[SF]|nothing)",
    rf"{_THERE} are (?:{_PL}{_RELS}|no {_ADJ}[PF])",
    rf"(?:the {_ADJ}[SF]|it|{_SG}) is {_PRED}",
    rf"(?:the {_ADJ}[PF]|they|M {_ADJ}[PF]) are {_PRED}",
    r"yes|no|C|O|M|no [SPF]",
)
_UNIT = re.compile(rf"(?:{'|'.join(f'(?:{u})' for u in _UNITS)})(?: in (?:the|this) (?:image|picture))?")
_VERDICTS = {"yes", "no"}


@lru_cache(maxsize=16)
def _tags(categories: tuple[str, ...], colors: tuple[str, ...]) -> dict[str, str]:
    tags = {"a": "D", "an": "D", "one": "O", "1": "O", **{n: "M" for n in _NUMBERS}}
    tags.update({s: "Z" for s in SIZE_WORDS})
    tags.update({c: "C" for c in colors})
    for c in categories:
        p = plural(c)
        tags[c], tags[p] = ("F", "F") if p == c else ("S", "P")
    return tags


def tag(tokens: list[str], categories, colors) -> str:
    """Space-joined tags of one unit's tokens; a/an that disagrees with the next word is tagged 'X', a number
    other than 1 written in digits 'M'."""
    table = _tags(tuple(categories), tuple(colors))
    out = []
    for k, w in enumerate(tokens):
        t = table.get(w, w)
        if w in ("a", "an") and k + 1 < len(tokens):
            vowel = tokens[k + 1][:1] in tuple("aeiou")
            t = t if (w == "an") == vowel else "X"
        elif t == w and w.isdigit():
            t = "M"
        out.append(t)
    return " ".join(out)


def sentences(text: str) -> tuple[list[list[str]], list[str]]:
    """(complete sentences as token lists without their end mark, the unfinished tail's tokens).

    An end mark with nothing before it ("blue.." or a run of dots) is an empty sentence, which no pattern
    matches: stray punctuation is text the grammar does not parse, and a policy must not pad answers with it."""
    done, current = [], []
    for w in words(text):
        if w in _ENDS:
            done.append(current)
            current = []
        else:
            current.append(w)
    return done, current


def units(tokens: list[str]) -> tuple[list[list[str]], list[str]]:
    """(the units of one sentence, the connectors between them), verdict prefix / suffix taken off first.

    "a, b, and c" has the connectors [",", ", and"]; "a and and b" has an empty unit between its two "and"s."""
    if len(tokens) > 2 and tokens[0] in _VERDICTS and tokens[1] == ",":
        tokens = tokens[2:]
    if len(tokens) > 3 and tokens[-3:-1] == [",", "so"] and tokens[-1] in _VERDICTS:
        tokens = tokens[:-3]
    out, seps = [[]], []
    for w in tokens:
        if w == "and" and not out[-1] and seps and seps[-1] == ",":
            seps[-1] = ", and"  # the Oxford comma
        elif w in (",", "and"):
            seps.append(w)
            out.append([])
        else:
            out[-1].append(w)
    return out, seps


def grammatical(tokens: list[str], categories, colors) -> bool:
    """Whether one sentence (without its end mark) is fluent: every unit reads, the list closes with "and"."""
    return sentence_cost(tokens, categories, colors, set()) == 0


def sentence_cost(tokens: list[str], categories, colors, said: set[tuple[str, ...]]) -> int:
    """What the grammar charges one sentence (module docstring); `said` collects the noun-less units seen so
    far in the text (a second "yes" or "it is green" is a repetition, not an answer)."""
    parts, seps = units(tokens)
    cost = int(len(parts) > 1 and seps[-1] == ",")
    for u in parts:
        tags = tag(u, categories, colors)
        nouns = sum(t in ("S", "P", "F") for t in tags.split())
        if not u or _UNIT.fullmatch(tags) is None:
            cost += max(1, nouns)
        elif not nouns:
            cost += tuple(u) in said
            said.add(tuple(u))
    return cost


@dataclass(frozen=True)
class Defects:
    """What a careful reader holds against a text, besides its content (module docstring)."""

    sentences: int
    ungrammatical: int
    truncated: bool
    repeated: int
    contradictions: int

    @property
    def fluent(self) -> bool:
        return not (self.ungrammatical or self.truncated or self.repeated or self.contradictions)

    @property
    def parses(self) -> bool:
        """Every sentence is world grammar and the text ends where a sentence ends (the parse rate)."""
        return self.sentences > 0 and not self.ungrammatical and not self.truncated

    @property
    def weight(self) -> float:
        """Fluency defects the judge charges: what the grammar cannot read (its cost), a missing final end mark
        and each repeated mention half. Contradictions are not here: the judge charges them as accuracy errors."""
        return self.ungrammatical + 0.5 * self.truncated + 0.5 * self.repeated


def repeated_mentions(parsed: Parsed) -> int:
    """Mentions of a category after its first one (a negated and an asserted mention both count)."""
    seen: dict[str, int] = {}
    for m in parsed.mentions:
        seen[m.category] = seen.get(m.category, 0) + 1
    return sum(n - 1 for n in seen.values())


def contradictions(parsed: Parsed) -> int:
    """Categories said in two colours, counts or sizes, or both present and absent; plus 1 for two colours said
    of nothing, 1 for two numbers said of nothing, 1 for yes and no."""
    values: dict[tuple[str, str], set] = {}
    present, absent = set(), set()
    for m in parsed.mentions:
        (absent if m.negated else present).add(m.category)
        if not m.negated:
            for field, v in (("color", m.color), ("count", m.count), ("size", m.size)):
                if v is not None:
                    values.setdefault((m.category, field), set()).add(v)
    bad = {c for (c, _), s in values.items() if len(s) > 1} | (present & absent)
    loose = int(len(set(parsed.loose_colors)) > 1) + int(len(set(parsed.loose_counts)) > 1)
    return len(bad) + loose + int(len(set(parsed.answers)) > 1)


def defects(text: str, parsed: Parsed, categories, colors) -> Defects:
    """The `Defects` of `text`; `parsed` is `parse(text, categories, colors)`."""
    done, tail = sentences(text)
    said: set[tuple[str, ...]] = set()
    bad = sum(sentence_cost(s, categories, colors, said) for s in [*done, *([tail] if tail else [])])
    return Defects(
        sentences=len(done) + bool(tail),
        ungrammatical=bad,
        truncated=bool(tail),
        repeated=repeated_mentions(parsed),
        contradictions=contradictions(parsed),
    )
