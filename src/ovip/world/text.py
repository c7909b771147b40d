"""The world's text side: description grammar, question templates with reference answers, the lexicon.

Every string the world writes comes from here, so the lexicon (the tokenizer's vocabulary and the parser's
known words) is exactly the set of words these templates can produce. Texts are lowercase; the tokenizer
lowercases its input too.

Tasks (the `task` field of split records): describe, exist, attribute, color, count, relation.

Yes/no answers (existence, attribute) state the evidence first and the verdict last ("the ball is blue,
so no."; "there is a red ball, so yes."; "there is no tree, so no."): a 2-layer decoder learns to read
what it sees and then compare words of its own output far faster than to decide yes/no in its first
token (measured when the world was built). `normalize_yes_no` still finds the verdict. Relation questions
name the two candidate relations ("is the key to the left or to the right of the cup?") about two
objects in one row or one column, so exactly one answer is right.

Descriptions list objects in reading order (rows top to bottom, each left to right).

Two voices. The *policy's voice* (`describe`, `question`) is what the base model is pretrained on and what
evaluation references use. The *reference voice* (`reference_voice`) is how the preference split's reference
answers A* read: like real preference data, whose references come from another model or annotator, they use
other openers and a short answer-first style ("no, there is no tree."; "two."), list objects in another
order, and now and then leave out a small object (an "approximate ideal answer — it may be incomplete",
as the paper's judge prompt says, Table 9). Supervised training on them is therefore not the same as
training on the evaluation's ground truth. `grammar.py` accepts both voices as fluent.
"""

from __future__ import annotations

import re

import numpy as np

from ovip.world.scene import Group, Scene, relation

TASKS = ("describe", "exist", "attribute", "color", "count", "relation")
SIZE_WORDS = ("small", "large")
COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
RELATION_PHRASES = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}

DESCRIBE_QUERIES = (
    "describe this image.",
    "describe the image briefly.",
    "what is in this image?",
    "what do you see in the picture?",
    "give a short description of the picture.",
)
DESCRIBE_OPENERS = (
    "the image shows {}.",
    "there {} {}.",
    "i can see {}.",
    "this picture contains {}.",
    "{}.",
)
REFERENCE_OPENERS = ("in the picture there {} {}.", "the picture has {}.")
EXIST_QUERIES = ("is there a {} in the image?", "is there a {} in this picture?")

_FUNCTION_WORDS = (
    "the image shows there is are i can see this picture contains describe briefly what in do you give short "
    "description of yes no not to left right above below how many color colour with and nothing so or it they has"
)
PUNCTUATION = (".", ",", "?")


def plural(category: str) -> str:
    return (
        category if category == "fish" else category + ("es" if category.endswith(("x", "ss", "sh")) else "s")
    )


def noun(category: str, count: int) -> str:
    return category if count == 1 else plural(category)


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def lexicon(categories, colors) -> list[str]:
    """All words and punctuation the world's templates can produce, in a fixed order."""
    words = _FUNCTION_WORDS.split() + list(SIZE_WORDS) + list(COUNT_WORDS) + list(colors)
    for c in categories:
        words += [c, plural(c)]
    return list(dict.fromkeys([*words, *PUNCTUATION]))


def group_phrase(g: Group, with_size: bool) -> str:
    """'two small red balls', 'an orange fish'."""
    words = ([g.size] if with_size else []) + [g.color, noun(g.category, g.count)]
    head = NUMBER_WORDS[g.count] if g.count > 1 else article(words[0])
    return " ".join([head, *words])


def join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def ordered(scene: Scene) -> list[Group]:
    """Canonical mention order: reading order (rows top to bottom, left to right) of each group's first
    instance, which a tiny model learns easily."""
    return sorted(scene.groups, key=lambda g: (round(g.positions[0][1], 2), g.positions[0][0]))


def describe(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """A one-sentence description of every group, in canonical order.

    `rng` adds phrasing variety (opener, size words). Without `rng` the first opener and no size words are
    used (the plain form the describer writes).
    """
    groups = ordered(scene)
    if not groups:
        return "there is nothing."
    phrases = [group_phrase(g, rng is not None and rng.random() < 0.5) for g in groups]
    body = join_list(phrases)
    opener = (
        DESCRIBE_OPENERS[int(rng.integers(len(DESCRIBE_OPENERS)))] if rng is not None else DESCRIBE_OPENERS[0]
    )
    if opener.startswith("there"):
        return opener.format("are" if groups[0].count > 1 else "is", body)
    return opener.format(body)


def _the(category: str, count: int) -> str:
    return f"the {noun(category, count)} {'is' if count == 1 else 'are'}"


def question(
    scene: Scene, task: str, rng: np.random.Generator, categories, colors, bait: dict[str, str] | None = None
) -> tuple[str, str] | None:
    """A (query, reference answer) pair of `task` about `scene`, or None when the scene cannot support it.

    `bait` maps a present category to a category the priors predict but which is absent (or to a colour
    the priors predict for it); existence and attribute questions then ask about the bait half the time
    (the prior-baiting questions of world-AMBER-dis).
    """
    present = [g for g in scene.groups]
    if not present:
        return None
    g = present[int(rng.integers(len(present)))]
    if task == "describe":
        return DESCRIBE_QUERIES[int(rng.integers(len(DESCRIBE_QUERIES)))], describe(scene, rng)
    if task == "exist":
        absent = [c for c in categories if c not in scene.categories()]
        if rng.random() < 0.5 or not absent:
            cat, yes = g.category, True
        else:
            baits = [b for b in (bait or {}).values() if b in absent]
            cat = str(rng.choice(baits)) if baits and rng.random() < 0.6 else str(rng.choice(absent))
            yes = False
        q = EXIST_QUERIES[int(rng.integers(len(EXIST_QUERIES)))].format(cat)
        if not yes:
            return q, f"there is no {cat}, so no."
        return q, f"there {'is' if g.count == 1 else 'are'} {group_phrase(g, False)}, so yes."
    if task == "attribute":
        if rng.random() < 0.5:
            asked = g.color
        else:
            prior = (bait or {}).get(g.category + ":color")
            asked = (
                prior
                if prior and prior != g.color and rng.random() < 0.6
                else str(rng.choice([c for c in colors if c != g.color]))
            )
        verb = "is" if g.count == 1 else "are"
        q = f"{verb} the {noun(g.category, g.count)} {asked}?"
        return q, f"{_the(g.category, g.count)} {g.color}, so {'yes' if asked == g.color else 'no'}."
    if task == "color":
        verb = "is" if g.count == 1 else "are"
        return (
            f"what color {verb} the {noun(g.category, g.count)}?",
            f"{_the(g.category, g.count)} {g.color}.",
        )
    if task == "count":
        absent = [c for c in categories if c not in scene.categories()]
        if absent and rng.random() < 0.1:
            cat = str(rng.choice(absent))
            return f"how many {plural(cat)} are there?", f"there are no {plural(cat)}."
        ans = (
            f"there is one {g.category}."
            if g.count == 1
            else f"there are {NUMBER_WORDS[g.count]} {plural(g.category)}."
        )
        return f"how many {plural(g.category)} are there?", ans
    if task == "relation":
        # two single objects in one row (left / right) or one column (above / below): exactly one relation holds
        singles = [x for x in present if x.count == 1]
        pairs = [(a, b) for a in singles for b in singles if a is not b and len(relation(a, b)) == 1]
        if not pairs:
            return None
        a, b = pairs[int(rng.integers(len(pairs)))]
        rel = next(iter(relation(a, b)))
        first, second = ("left", "right") if rel in ("left", "right") else ("above", "below")
        if rng.random() < 0.5:
            first, second = second, first
        if first in ("left", "right"):
            q = f"is the {a.category} to the {first} or to the {second} of the {b.category}?"
        else:
            q = f"is the {a.category} {first} or {second} the {b.category}?"
        return q, f"the {a.category} is {RELATION_PHRASES[rel]} the {b.category}."
    raise ValueError(f"unknown task {task!r}; known: {TASKS}")


def reference_voice(
    scene: Scene, task: str, reference: str, rng: np.random.Generator, omit_small_p: float
) -> str:
    """`reference` (a policy-voice answer of `task` about `scene`) rewritten in the reference voice.

    Descriptions: a reference-voice opener, objects in shuffled order half the time, size words 30% of the
    time, each small object left out with probability `omit_small_p` (at least one object stays). Yes/no
    answers: the verdict first ("no, the ball is red."), or the bare verdict 30% of the time. Colour: "it is
    red." / "red.". Count: the bare number ("two."). Relations keep their one sentence.
    """
    if task == "describe":
        groups = ordered(scene)
        kept = [g for g in groups if not (g.size == "small" and rng.random() < omit_small_p)] or groups[:1]
        if rng.random() < 0.5:
            kept = [kept[i] for i in rng.permutation(len(kept))]
        body = join_list([group_phrase(g, rng.random() < 0.3) for g in kept])
        opener = REFERENCE_OPENERS[int(rng.integers(len(REFERENCE_OPENERS)))]
        return (
            opener.format("are" if kept[0].count > 1 else "is", body)
            if "there" in opener
            else opener.format(body)
        )
    body = reference.rstrip(".")
    if task in ("exist", "attribute"):
        evidence, _, verdict = body.rpartition(", so ")
        return f"{verdict}." if rng.random() < 0.3 else f"{verdict}, {evidence}."
    if task == "color":
        color = body.rsplit(" ", 1)[1]
        subject = "they are" if " are " in body else "it is"
        return f"{color}." if rng.random() < 0.5 else f"{subject} {color}."
    if task == "count" and " no " not in body:
        return f"{body.split()[2]}."  # "there is one ball" / "there are two balls" -> "one." / "two."
    return reference


_TOKEN = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lowercase word / punctuation tokens, as the world's tokenizer and parser see them."""
    return _TOKEN.findall(text.lower())
