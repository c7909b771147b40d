"""The world's G_r (judge), G_diff (describer) and Diff (renderer): rule-based, text-only like the paper's LLMs.

Judge (Eq. 1, prompt of Table 9): compares a response with the reference answer and returns "Score: x",
x in [0, 10]. Table 9 asks an LLM to weigh, in this order: accuracy and "adherence to the correct answer";
a response "much more detailed than the reference answer ... should not be considered a very good response
(although it may still be considered a good one)"; and the reference is "an approximate ideal answer - it may
be incomplete". An LLM reader also does not call degenerate text a good answer. The rubric, over the claims
of `rubric.py` (objects with colour / count / size, absences, relations, the yes/no verdict; a terse answer
such as "green." is bound to the question's object):

    score = 10 * adherence * detail * accuracy * fluency, rounded to 0.01

    adherence  in [0, 1]: how much of the reference the response states
        coverage  = mean over the reference's claims of their credit: an object present 0.4 + 0.6 * the mean,
                    over the attributes the reference states, of 1 (same), 0.5 (not said), 0 (different);
                    an absence, "there is nothing" or a relation: 1 when the response states it
        adherence = coverage                                   for descriptions
                  = 0.7 * core_ok + 0.3 * coverage             for questions (core: the verdict, the asked
                                                               colour, count or relation)
    detail     = 0.6 + 0.4 / (1 + E): unverifiable detail (the reference may be incomplete) lowers the score
                 gently and never below 0.6, so an answer that states everything the reference states,
                 contradicts nothing and adds more is "still good" (>= 6). E: 1 per object, absence or
                 relation the reference does not mention; 0.1 per colour, size or count > 1 added to an
                 object the reference names.
    accuracy   = 0.45 ** core_errors * 0.58 ** side_errors: accuracy first. Errors: a colour, count or size
                 other than the reference's; an object denied that the reference affirms, or affirmed that it
                 denies; a relation opposite to the reference's; a verdict opposite to the reference's;
                 evidence that contradicts the answer's own verdict ("the star is red, so yes." to "is the
                 star yellow?"); two incompatible values for one thing ("it is green. it is red."). Core
                 errors are about what the question asks (the asked object's presence and asked attribute,
                 the asked relation, the verdict; every error of a description). So any error leaves at most
                 5.8, below every error-free complete answer however much it adds, and a core error at most
                 4.5 (r- < tau_neg = 5, Eq. 2); the answer without the erroneous claim always scores higher.
    fluency    = 0.45 ** w, w from `grammar.defects`: what the grammar cannot read (1 per object noun of an
                 unreadable unit, at least 1; an empty unit such as "and and" or a stray end mark; a list
                 closing on a bare comma; a noun-less unit said again), read in the unfinished tail as in any
                 sentence; plus 0.5 for a missing final end mark and 0.5 per repeated object mention. One
                 defect costs what a core error costs: a correct answer with one unreadable part scores 4.5
                 and can never be a chosen response (r+ > tau_pos = 5); degenerate text falls geometrically,
                 however many right words it holds ("a yellow box and a large yellow bell. a yellow bell is a
                 yellow bell and a red yes. a yellow box and a white an orange a yellow box a yellow box and a"
                 scores near 0).

The judge knows nothing but the two texts and the question, as Table 9's LLM; a response's length matters only
through the claims and defects it holds, never as a count of words. `docs/decisions.md` tabulates the
rubric on probe answers, before and after it replaced a word-credit judge.

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
from functools import lru_cache

from PIL import Image

from ovip.config.world import COLOR_NAMES, SHAPE_NAMES, WorldConfig
from ovip.records import Description, Judgment, NegativeImage
from ovip.world.grammar import defects
from ovip.world.parse import Mention, Parsed, parse, text_to_scene
from ovip.world.render import render
from ovip.world.rubric import Asked, Claims, claims_of, compare, relations
from ovip.world.text import NUMBER_WORDS, RELATION_PHRASES, article, join_list, noun, words

EMPTY_SCENE = "there is nothing."


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


ANSWER_WEIGHT = 0.7  # adherence of a question's answer: the core answer, then the rest of the reference
CORE_ERROR = 0.45  # accuracy factor per error about what the question asks, and per fluency defect
SIDE_ERROR = 0.58  # per other accuracy error: any error leaves at most 5.8 < 6, the floor of "still good"
DETAIL_FLOOR = 0.6  # unverifiable detail never takes an error-free complete answer below 6


@lru_cache(maxsize=4096)
def _read_reference(query: str, reference: str, categories, colors) -> tuple[str, Asked, Claims]:
    """(task, what it asks, the reference's claims): the same for the k responses of a prompt, so read once.
    The claims are shared between calls and never changed."""
    task = query_task(query)
    asked = Asked.of(parse(query, categories, colors))
    return task, asked, claims_of(task, asked, parse(reference, categories, colors), reference)


class WorldJudge:
    """G_r over the world lexicon: `judge(query, responses, reference) -> [Judgment]` (records.Judge)."""

    def __init__(self, categories=SHAPE_NAMES, colors=COLOR_NAMES):
        self.categories, self.colors = tuple(categories), tuple(colors)

    def score(self, query: str, response: str, reference: str) -> float:
        """The rubric of the module docstring: 10 * adherence * detail * accuracy * fluency."""
        task, asked, ref = _read_reference(query, reference, self.categories, self.colors)
        parsed = parse(response, self.categories, self.colors)
        c = compare(task, asked, ref, claims_of(task, asked, parsed, response))
        adherence = c.coverage
        if task != "describe":
            adherence = ANSWER_WEIGHT * c.core_ok + (1 - ANSWER_WEIGHT) * c.coverage
        detail = DETAIL_FLOOR + (1 - DETAIL_FLOOR) / (1 + c.extra)
        accuracy = CORE_ERROR**c.core_errors * SIDE_ERROR**c.side_errors
        fluency = CORE_ERROR ** defects(response, parsed, self.categories, self.colors).weight
        return round(10.0 * adherence * detail * accuracy * fluency, 2)

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

    def __init__(self, categories=SHAPE_NAMES, colors=COLOR_NAMES):
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
