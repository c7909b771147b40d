"""The world's grammar: which texts are fluent world language, and what is wrong with the others.

The parser (`parse.py`) reads anything and never fails, which is what a judge of *content* needs. A judge of
*fluency* (Table 9's judge is an LLM, and no LLM calls "a yellow bell is a yellow bell and a red yes" a good
answer) and the degeneration metrics need the opposite: a strict acceptor. Every sentence the world's
templates write (`text.py`, both the policy's voice and the reference voice) is accepted; anything else is
not.

A text is split into sentences at ".", "?" and "!". Each complete sentence is tagged word by word and the tag
string must match one sentence template in full:

    NP_sg   = (a | an | one) [size] [colour] noun_sg           article agrees with the next word ("an orange")
    NP_pl   = (two | ... | five) [size] [colour] noun_pl
    LIST    = NP | NP (, NP)* and NP                            "x", "x and y", "x, y and z" (not "x, y")
    describe: [the image shows | i can see | this picture contains | the picture has] LIST
              there is NP_sg-LIST | there are NP_pl-LIST | in the picture there is/are ...
    exist:    there is NP_sg , so yes | there are NP_pl , so yes | there is no noun_sg , so no
              yes , there is NP_sg | no , there is no noun_sg | yes | no
    attribute / colour: the noun_sg is colour [, so yes|no] | yes|no , the noun_sg is colour | it is colour | colour
    count:    there are no noun_pl | one | two ... | (covered above: there is one x, there are two xs)
    relation: the noun_sg is (to the left of | to the right of | above | below) the noun_sg

Defects (`defects`), the fluency half of the world judge and of the degeneration metrics:
    ungrammatical  complete sentences that match no template (an empty one, "blue..", included)
    truncated      1 if the text ends inside a sentence (no final "." / "?" / "!"), as a cut-off answer does
    repeated       object mentions beyond the first for one category ("a box ... a box ... a box": 2)
    contradictions a category said in two colours or two counts, said present and absent, or "yes" and "no"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ovip.world.parse import Parsed
from ovip.world.text import SIZE_WORDS, plural, words

_ENDS = {".", "?", "!"}
_NUMBERS = {"two", "three", "four", "five"}

_NP_SG = r"[DO] (?:Z )?(?:C )?[SF]"
_NP_PL = r"M (?:Z )?(?:C )?[PF]"
_NP = rf"(?:{_NP_SG}|{_NP_PL})"
_TAIL = rf"(?:(?: , {_NP})* and {_NP})?"  # one item, or commas then "and" before the last
_LIST = rf"{_NP}{_TAIL}"
_REL = r"(?:to the left of|to the right of|above|below)"
_TEMPLATES = (
    # descriptions, both voices
    rf"(?:the image shows |i can see |this picture contains |the picture has )?{_LIST}",
    rf"(?:in the picture )?there is {_NP_SG}{_TAIL}",
    rf"(?:in the picture )?there are {_NP_PL}{_TAIL}",
    # existence
    rf"there is {_NP_SG} , so yes",
    rf"there are {_NP_PL} , so yes",
    r"there is no [SF] , so no",
    rf"yes , there is {_NP_SG}",
    rf"yes , there are {_NP_PL}",
    r"no , there is no [SF]",
    r"yes",
    r"no",
    # attribute and colour
    r"the [SF] is C(?: , so (?:yes|no))?",
    r"the [PF] are C(?: , so (?:yes|no))?",
    r"(?:yes|no) , the [SF] is C",
    r"(?:yes|no) , the [PF] are C",
    r"it is C",
    r"they are C",
    r"C",
    # count
    r"there are no [PF]",
    r"[OM]",
    # relation
    rf"the [SF] is {_REL} the [SF]",
)
_SENTENCE = re.compile("|".join(f"(?:{t})" for t in _TEMPLATES))


@lru_cache(maxsize=16)
def _tags(categories: tuple[str, ...], colors: tuple[str, ...]) -> dict[str, str]:
    tags = {"a": "D", "an": "D", "one": "O", **{n: "M" for n in _NUMBERS}}
    tags.update({s: "Z" for s in SIZE_WORDS})
    tags.update({c: "C" for c in colors})
    for c in categories:
        p = plural(c)
        tags[c], tags[p] = ("F", "F") if p == c else ("S", "P")
    return tags


def tag(tokens: list[str], categories, colors) -> str:
    """Space-joined tags of one sentence's tokens; a/an that disagrees with the next word is tagged 'X'."""
    table = _tags(tuple(categories), tuple(colors))
    out = []
    for k, w in enumerate(tokens):
        t = table.get(w, w)
        if w in ("a", "an") and k + 1 < len(tokens):
            vowel = tokens[k + 1][:1] in tuple("aeiou")
            t = t if (w == "an") == vowel else "X"
        out.append(t)
    return " ".join(out)


def sentences(text: str) -> tuple[list[list[str]], list[str]]:
    """(complete sentences as token lists without their end mark, the unfinished tail's tokens).

    An end mark with nothing before it ("blue.." or a run of dots) is an empty sentence, which no template
    matches: stray punctuation is text the grammar does not parse, and a policy must not pad answers with it."""
    done, current = [], []
    for w in words(text):
        if w in _ENDS:
            done.append(current)
            current = []
        else:
            current.append(w)
    return done, current


def grammatical(tokens: list[str], categories, colors) -> bool:
    return _SENTENCE.fullmatch(tag(tokens, categories, colors)) is not None


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
        """Defect count the judge charges: a repeated mention costs half, everything else one."""
        return self.ungrammatical + self.truncated + self.contradictions + 0.5 * self.repeated


def repeated_mentions(parsed: Parsed) -> int:
    """Mentions of a category after its first one (a negated and an asserted mention both count)."""
    seen: dict[str, int] = {}
    for m in parsed.mentions:
        seen[m.category] = seen.get(m.category, 0) + 1
    return sum(n - 1 for n in seen.values())


def contradictions(parsed: Parsed) -> int:
    """Categories said in two colours, two counts, or both present and absent; plus 1 for yes and no."""
    colors: dict[str, set[str]] = {}
    counts: dict[str, set[int]] = {}
    present, absent = set(), set()
    for m in parsed.mentions:
        (absent if m.negated else present).add(m.category)
        if not m.negated and m.color:
            colors.setdefault(m.category, set()).add(m.color)
        if not m.negated and m.count is not None:
            counts.setdefault(m.category, set()).add(m.count)
    bad = {c for c, s in colors.items() if len(s) > 1} | {c for c, s in counts.items() if len(s) > 1}
    bad |= present & absent
    return len(bad) + int(len(set(parsed.answers)) > 1)


def defects(text: str, parsed: Parsed, categories, colors) -> Defects:
    """The `Defects` of `text`; `parsed` is `parse(text, categories, colors)`."""
    done, tail = sentences(text)
    bad = sum(not grammatical(s, categories, colors) for s in done)
    return Defects(
        sentences=len(done) + bool(tail),
        ungrammatical=bad,
        truncated=bool(tail),
        repeated=repeated_mentions(parsed),
        contradictions=contradictions(parsed),
    )
