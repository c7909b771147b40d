"""The world's G_r (judge), G_diff (describer) and Diff (renderer): rule-based, text-only like the paper's LLMs.

Judge (Eq. 1, prompt of Table 9): compares a response with the reference answer and returns "Score: x",
x in [0, 10], weighing what Table 9 asks an LLM to weigh: accuracy against the reference, and a response
that a careful reader can take as an answer at all. The rubric:

    content  in [0, 1]: how much of the reference the response gets right, and nothing else
        detail = sum_{c in R, mentioned} credit(c) / (|R| + |H|)       (1 when both are empty)
        credit = 0.4 + 0.4 * colour_ok + 0.2 * count_ok                 (unstated colour / count: half)
        content = detail                                  for descriptions
        content = 0.7 * answer_ok + 0.3 * detail          for questions (answer: yes/no, colour, count,
                                                           relation)
      with R the reference's claims (objects, relations; for a question also the asked object whenever the
      reference affirms it, so that "there is a red ball, so yes." matches the reference "yes.") and H the
      response's claims absent from R. Adding a hallucinated object only grows the denominator and dropping
      a true one only shrinks the numerator, so neither can raise the score; a response more detailed than
      the reference is "not a very good response (although it may still be a good one)", as Table 9 says.
    fluency  = 1 / (1 + defects), defects from `grammar.defects`: each sentence that is not world grammar,
      a cut-off ending, and each contradiction cost 1; each repeated mention of an object costs 0.5.
    score    = 10 * content * fluency, rounded to 0.01.

So a correct, fluent answer scores 10; one ungrammatical sentence halves the score (a correct answer with one
garbled sentence can no longer be a chosen response, r+ > tau_pos = 5); the degenerate texts that an online
policy finds when a judge counts right words ("a yellow box and a large yellow bell. a yellow bell is a
yellow bell and a red yes. a yellow box and a white an orange a yellow box a yellow box and a") score near 0
however many right words they contain.

Describer (Appendix I, Table 10, with the authors' swap: the description matches the *rejected* answer):
writes the objects, attributes and relations that the rejected answer claims, completing a bare yes/no
with the question's content. A rejected answer that names nothing (empty, cut off, garbled: "........") is
described as an empty scene ("there is nothing."), as an LLM asked for a description still writes one:
dropping such pairs would leave the degenerate answers an online policy drifts into without a rejected side.
Renderer: `render(text_to_scene(description))`; the empty-scene sentence draws the bare background, any other
description in which the parser finds no object is a failed `NegativeImage`; unknown words are ignored and
counted.
"""

from __future__ import annotations

from collections import Counter

from PIL import Image

from ovip.records import Description, Judgment, NegativeImage
from ovip.world.config import WorldConfig
from ovip.world.grammar import defects
from ovip.world.parse import Mention, Parsed, parse, text_to_scene
from ovip.world.render import PALETTE, SHAPES, render
from ovip.world.scene import opposite
from ovip.world.text import NUMBER_WORDS, RELATION_PHRASES, article, join_list, noun, words

EMPTY_SCENE = "there is nothing."

ANSWER_WEIGHT = 0.7


def query_task(query: str) -> str:
    """The task of a world question, from its wording (the judge sees no task label, as an LLM would not)."""
    w = words(query)
    text = " ".join(w)
    if text.startswith("how many"):
        return "count"
    if text.startswith("what color") or text.startswith("what colour"):
        return "color"
    if w[:1] in (["is"], ["are"]):
        if set(w) & {"left", "right", "above", "below"}:
            return "relation"
        return "exist" if w[1:2] == ["there"] else "attribute"
    return "describe"


def _credit(ref: Mention, got: Mention) -> float:
    def part(want, have):
        return 1.0 if want is None or want == have else (0.5 if have is None else 0.0)

    return 0.4 + 0.4 * part(ref.color, got.color) + 0.2 * part(ref.count, got.count)


def detail_score(response: Parsed, reference: Parsed) -> float:
    """Share of the reference's claims (objects, relations) the response gets right, penalised by
    unsupported ones: (sum of credits) / (|reference claims| + |unsupported response claims|)."""
    ref, got = reference.objects(), response.objects()
    ref_rels, got_rels = relations(reference), relations(response)
    extra = [c for c in got if c not in ref] + list(got_rels - ref_rels)
    if not ref and not ref_rels and not extra:
        return 1.0
    right = sum(_credit(m, got[c]) for c, m in ref.items() if c in got) + len(ref_rels & got_rels)
    return right / (len(ref) + len(ref_rels) + len(extra))


def relations(parsed: Parsed) -> set[tuple[str, str, str]]:
    """Relation claims with (a, rel, b) and (b, opposite(rel), a) written one way (a <= b)."""
    return {(a, r, b) if a <= b else (b, opposite(r), a) for a, r, b in parsed.category_relations()}


def answer_ok(task: str, query: Parsed, response: Parsed, reference: Parsed) -> bool:
    """Whether the response's core answer (yes/no, the asked colour, the asked count) equals the reference's."""
    if task in ("exist", "attribute"):
        return response.answer is not None and response.answer == reference.answer
    if task == "relation":
        want = relations(reference)
        return bool(want) and want <= relations(response)
    asked = query.mentions[0].category if query.mentions else None
    if task == "color":
        want = {m.color for m in reference.objects().values()} - {None}
        claim = response.objects().get(asked)
        have = claim.color if claim and claim.color else next(iter(response.loose_colors), None)  # "blue."
        return have is not None and have in want
    if task == "count":

        def count(p: Parsed):
            if asked in p.negated():
                return 0
            m = p.objects().get(asked)
            return m.count if m and m.count is not None else next(iter(p.loose_counts), None)  # "three."

        return count(reference) is not None and count(response) == count(reference)
    return True


def with_asked_object(task: str, query: Parsed, reference: Parsed) -> Parsed:
    """`reference` plus the object a question asks about, when the reference affirms it is there.

    A terse reference ("yes.", "red.", "two.") states the asked object only through the question; a response
    that names it ("there is a red ball, so yes.") must not be charged for an unsupported claim.
    """
    if task in ("describe", "relation") or not query.mentions:
        return reference
    asked = query.mentions[0]
    if asked.category in reference.objects() or asked.category in reference.negated():
        return reference
    if task == "exist" and reference.answer != "yes":
        return reference
    if task == "count" and 0 in reference.loose_counts:
        return reference
    color = asked.color if task == "attribute" and reference.answer == "yes" else None
    if task in ("color", "attribute"):
        color = color or next(iter(reference.loose_colors), None)
    count = next(iter(reference.loose_counts), None) if task == "count" else None
    claim = Mention(asked.category, color, count)
    return Parsed(
        mentions=[*reference.mentions, claim],
        relations=list(reference.relations),
        answer=reference.answer,
        answers=list(reference.answers),
        loose_colors=list(reference.loose_colors),
        loose_counts=list(reference.loose_counts),
    )


class WorldJudge:
    """G_r over the world lexicon: `judge(query, responses, reference) -> [Judgment]` (records.Judge)."""

    def __init__(self, categories=tuple(SHAPES), colors=tuple(PALETTE)):
        self.categories, self.colors = tuple(categories), tuple(colors)

    def score(self, query: str, response: str, reference: str) -> float:
        """The rubric of the module docstring: 10 * content * fluency."""
        return round(10.0 * self.content(query, response, reference) * self.fluency(response), 2)

    def content(self, query: str, response: str, reference: str) -> float:
        task = query_task(query)
        p = lambda t: parse(t, self.categories, self.colors)  # noqa: E731
        resp, q = p(response), p(query)
        ref = with_asked_object(task, q, p(reference))
        detail = detail_score(resp, ref)
        if task == "describe":
            return detail
        return ANSWER_WEIGHT * answer_ok(task, q, resp, ref) + (1 - ANSWER_WEIGHT) * detail

    def fluency(self, response: str) -> float:
        return 1.0 / (
            1.0
            + defects(
                response, parse(response, self.categories, self.colors), self.categories, self.colors
            ).weight
        )

    def judge(self, query: str, responses: list[str], reference: str) -> list[Judgment]:
        out = []
        for r in responses:
            s = self.score(query, r, reference)
            out.append(Judgment(response=r, score=s, raw=f"Score: {s:g}\n"))
        return out


def _phrase(m: Mention) -> str:
    count = m.count or 1
    body = " ".join(w for w in (m.size, m.color, noun(m.category, count)) if w)
    return f"{NUMBER_WORDS[count]} {body}" if count > 1 else f"{article(body)} {body}"


class WorldDescriber:
    """G_diff: a description of an image in which the rejected answer is right (records.Describer)."""

    def __init__(self, categories=tuple(SHAPES), colors=tuple(PALETTE)):
        self.categories, self.colors = tuple(categories), tuple(colors)

    def describe(self, query: str, chosen: str, rejected: str) -> Description:
        p = lambda t: parse(t, self.categories, self.colors)  # noqa: E731
        task, rej, q = query_task(query), p(rejected), p(query)
        claims = dict(rej.objects())
        absent = set(rej.negated())
        if task != "describe" and q.mentions:
            asked = q.objects() or {m.category: m for m in q.mentions}
            first = next(iter(asked))
            says_no = rej.answer == "no"
            if first in rej.negated() or (task == "exist" and says_no):
                absent.add(first)
                claims.pop(first, None)
            else:
                for c, m in asked.items():
                    have = claims.get(c) or Mention(c)
                    color, count = have.color or m.color, have.count or m.count
                    if c == first and task == "color" and not have.color and rej.loose_colors:
                        color = rej.loose_colors[0]  # a bare "blue."
                    if c == first and task == "count" and not have.count and rej.loose_counts:
                        count = rej.loose_counts[0]  # a bare "three."
                    if c == first and task == "attribute" and says_no and not have.color:
                        color = next(x for x in self.colors if x != m.color)
                    claims[c] = Mention(c, color, count, have.size)
            absent -= set(claims)
        if not claims and not absent:
            return Description(EMPTY_SCENE, raw=rejected)
        # Relations only between objects still claimed (an "is there a B?" answered "no" drops B above).
        rels = [r for r in rej.category_relations() if r[0] in claims and r[2] in claims]
        used: set[str] = set()
        parts = []
        for a, rel, b in rels[:1]:
            parts.append(f"{_phrase(claims[a])} {RELATION_PHRASES[rel]} {_phrase(claims[b])}")
            used |= {a, b}
        parts += [_phrase(m) for c, m in claims.items() if c not in used]
        parts += [f"no {c}" for c in sorted(absent)]
        return Description(join_list(parts) + ".", raw=rejected)


class WorldRenderer:
    """Diff for the world: `synthesize(description, positive, seed)` = render(text_to_scene(description)).

    Counters: `unknown_words` (word -> times ignored), `failures` (descriptions with no known object).
    """

    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self.unknown_words: Counter[str] = Counter()
        self.failures = 0

    def synthesize(self, description: str, positive: Image.Image | None, seed: int) -> NegativeImage:
        scene, parsed = text_to_scene(description or "", self.cfg, seed)
        self.unknown_words.update(parsed.unknown)
        if not parsed.mentions and words(description or "") != words(EMPTY_SCENE):
            self.failures += 1
            return NegativeImage(None, error=f"description names no object of the world: {description!r}")
        size = positive.size[0] if positive is not None else self.cfg.image_size
        return NegativeImage(render(scene, seed, size))
