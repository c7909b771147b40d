"""The world's grammar: every sentence the world writes reads, plain correct English reads, and what does not read
is charged by how much of it does not (the unfinished tail like any sentence)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ovip.config.world import WorldConfig
from ovip.world.grammar import defects, grammatical, sentences
from ovip.world.judge import WorldDescriber
from ovip.world.parse import parse
from ovip.world.scene import sample_scene
from ovip.world.text import TASKS, question, reference_voice
from ovip.world.truth import answer

CFG = WorldConfig()


def d(text: str):
    return defects(text, parse(text, CFG.categories, CFG.colors), CFG.categories, CFG.colors)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10**9),
    task=st.sampled_from(TASKS),
    mode=st.sampled_from(["biased", "counter", "free"]),
)
def test_every_text_the_world_writes_is_fluent(seed, task, mode):
    scene = sample_scene(CFG, seed, mode)
    rng = np.random.default_rng(seed)
    qa = question(scene, task, rng, CFG.categories, CFG.colors)
    if qa is None:
        return
    q, ref = qa
    texts = [ref, reference_voice(scene, task, ref, rng, 0.3), answer(q, scene, CFG.categories, CFG.colors)]
    texts.append(WorldDescriber(CFG.categories, CFG.colors).describe(q, ref, ref).text)
    for text in filter(None, texts):
        assert d(text).parses and d(text).weight == 0, text


def test_plain_correct_english_reads():
    for text in (
        "a blue boat, a yellow fish, and a green arrow",
        "a blue boat next to a yellow fish and a green arrow",
        "1 blue boat, 2 yellow fish and 3 green arrows",
        "the boat is blue, the fish is yellow and the arrow is green",
        "there is a blue boat in the picture",
        "a blue boat is to the left of a yellow fish",
        "yes, the star is not red",
    ):
        tokens = sentences(text + ".")[0][0]
        assert grammatical(tokens, CFG.categories, CFG.colors), text


def test_what_does_not_read_is_charged_by_how_much_does_not():
    ok = "a blue boat and a yellow fish."
    assert d(ok).weight == 0
    # an empty unit between connectors costs 1 each ("and and and" holds two)
    assert d("a blue boat and and a yellow fish.").ungrammatical == 1
    assert d("a blue boat and and and a yellow fish.").ungrammatical == 2
    # a unit that reads as nothing costs one per object noun it holds
    assert d("a blue boat a yellow fish a green arrow.").ungrammatical == 3
    assert d("blue the a.").ungrammatical == 1
    # a list that closes on a bare comma; a stray end mark
    assert d("a blue boat, a yellow fish.").ungrammatical == 1
    assert d("a blue boat..").ungrammatical == 1
    # a noun-less unit said again
    assert d("yes. yes and yes.").ungrammatical == 2
    # the unfinished tail is read like any sentence, plus half a defect for the missing end mark
    tail = d(ok + " and and and the the of of")
    assert tail.truncated and tail.ungrammatical == 4 and tail.weight == 4.5
    assert d("a blue boat and a yellow fish").weight == 0.5
    assert not d(ok + " and").parses


def test_contradictions_include_values_said_of_nothing():
    assert d("it is green. it is red.").contradictions == 1
    assert d("two. three.").contradictions == 1
    assert d("a small boat and a large boat.").contradictions == 1
    assert d("it is green. it is green.").contradictions == 0
