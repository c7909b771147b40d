"""The true answer to a world question about any scene: the reference the world's splits would have written.

`answer(query, scene)` reads the task from the question's wording (`judge.query_task`, as the judge does) and
writes the complete policy-voice answer of `text.question` for that scene, so that `WorldJudge.score(query,
response, answer(query, scene))` tells how right `response` is for `scene`. It serves the analyses that need
to know whether an answer is true of an image other than the example's own (a negative image I-, Table 1).

A relation question has a true answer only when both objects are single and exactly one of the two relations
it names holds; otherwise (and for a question the parser cannot read) `answer` returns None.
"""

from __future__ import annotations

from ovip.config.world import COLOR_NAMES, SHAPE_NAMES
from ovip.world.judge import query_task
from ovip.world.parse import parse
from ovip.world.scene import Scene, relation
from ovip.world.text import NUMBER_WORDS, RELATION_PHRASES, describe, group_phrase, noun, plural, words

_AXES = ({"left", "right"}, {"above", "below"})


def answer(query: str, scene: Scene, categories=SHAPE_NAMES, colors=COLOR_NAMES) -> str | None:
    """The policy-voice reference answer of `query` about `scene` (None: the question has no single answer)."""
    task = query_task(query)
    if task == "describe":
        return describe(scene)
    mentions = parse(query, categories, colors).mentions
    if not mentions:
        return None
    asked = mentions[0]
    g = scene.group(asked.category)
    if task == "relation":
        other = mentions[1].category if len(mentions) > 1 else None
        b = scene.group(other) if other else None
        if g is None or b is None or g.count != 1 or b.count != 1:
            return None
        axis = next((a for a in _AXES if a & set(words(query))), set())
        held = relation(g, b) & axis
        if len(held) != 1:
            return None
        return f"the {g.category} is {RELATION_PHRASES[held.pop()]} the {b.category}."
    cat = asked.category
    if g is None:
        return (
            f"there are no {plural(cat)}."
            if task == "count"
            else f"there is no {cat}" + ("." if task == "color" else ", so no.")
        )
    the = f"the {noun(cat, g.count)} {'is' if g.count == 1 else 'are'}"
    if task == "exist":
        return f"there {'is' if g.count == 1 else 'are'} {group_phrase(g, False)}, so yes."
    if task == "attribute":
        return f"{the} {g.color}, so {'yes' if asked.color == g.color else 'no'}."
    if task == "color":
        return f"{the} {g.color}."
    if g.count == 1:  # count
        return f"there is one {cat}."
    return f"there are {NUMBER_WORDS[g.count]} {plural(cat)}."


def holds(query: str, response: str, scene: Scene, categories=SHAPE_NAMES, colors=COLOR_NAMES) -> bool | None:
    """Whether `response` says nothing false about `scene` (None: the question has no single true answer).

    A question's answer holds when its core answer (yes/no, the colour, the count, the relation) is the true
    one (`judge.answer_ok` against `answer`); a description holds when every object it says is there is there,
    with the colour and count it states (when it states them). Omissions are not falsehoods: a description that
    names one of three objects holds.
    """
    from ovip.world.judge import answer_ok, with_asked_object

    truth = answer(query, scene, categories, colors)
    if truth is None:
        return None
    task = query_task(query)
    said = parse(response, categories, colors)
    if task != "describe":
        q = parse(query, categories, colors)
        return answer_ok(task, q, said, with_asked_object(task, q, parse(truth, categories, colors)))
    for m in said.objects().values():
        g = scene.group(m.category)
        if (
            g is None
            or (m.color is not None and m.color != g.color)
            or (m.count is not None and m.count != g.count)
        ):
            return False
    return True
