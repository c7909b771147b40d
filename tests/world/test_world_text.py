"""The world's text-to-image model: render(parse(describe(scene))) reproduces the scene's objects."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovip.config.world import WorldConfig
from ovip.world.judge import WorldRenderer
from ovip.world.parse import parse, text_to_scene
from ovip.world.render import render
from ovip.world.scene import Scene, relation, sample_scene
from ovip.world.text import describe, lexicon, question, words

CFG = WorldConfig()
MODES = st.sampled_from(["biased", "counter", "free"])


def objects(scene: Scene) -> dict:
    return {g.category: (g.color, g.count) for g in scene.groups}


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10**9), mode=MODES)
def test_parse_of_describe_recovers_every_object(seed, mode):
    scene = sample_scene(CFG, seed, mode)
    text = describe(scene, np.random.default_rng(seed))
    parsed = parse(text)
    assert not parsed.unknown
    assert {c: (m.color, m.count) for c, m in parsed.objects().items()} == objects(scene)
    for c, m in parsed.objects().items():  # a size word, when written, is the right one
        assert m.size in (None, scene.group(c).size)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**9), mode=MODES)
def test_render_of_parse_of_describe_reproduces_the_scene(seed, mode):
    scene = sample_scene(CFG, seed, mode)
    rebuilt, parsed = text_to_scene(describe(scene, np.random.default_rng(seed)), CFG, seed=seed + 1)
    assert objects(rebuilt) == objects(scene)
    image = render(rebuilt, seed, CFG.image_size)
    assert image.size == (CFG.image_size, CFG.image_size)


def test_scene_sampling_and_rendering_are_deterministic():
    scene = sample_scene(CFG, 123, "biased")
    assert scene == sample_scene(CFG, 123, "biased")
    assert scene != sample_scene(CFG, 124, "biased")
    a, b = np.asarray(render(scene, 5)), np.asarray(render(scene, 5))
    assert (a == b).all()
    assert (a != np.asarray(render(scene, 6))).any()  # the seed moves texture and noise
    assert render(scene, 5, size=128).size == (128, 128)


def test_objects_stay_inside_their_grid_cell():
    for seed in range(200):
        scene = sample_scene(CFG, seed, "biased")
        cells = set()
        for g in scene.groups:
            for x, y in g.positions:
                cell = (int(x * CFG.grid), int(y * CFG.grid))
                assert cell not in cells
                cells.add(cell)
                for v, c in ((x, cell[0]), (y, cell[1])):  # the box lies within the cell
                    assert (
                        c / CFG.grid <= v - g.scale / 2 + 1e-6
                        and v + g.scale / 2 <= (c + 1) / CFG.grid + 1e-6
                    )


def test_counter_prior_scenes_break_every_prior():
    for seed in range(300):
        scene = sample_scene(CFG, seed, "counter")
        cats = scene.categories()
        assert any(a in cats for a, _, _ in CFG.co_occurrence)
        for a, b, _ in CFG.co_occurrence:
            assert not (a in cats and b in cats)
        for a, c, _ in CFG.color_priors:
            if a in cats:
                assert scene.group(a).color != c


def test_biased_scenes_follow_the_co_occurrence_prior():
    a, b, p = CFG.co_occurrence[0]
    with_a = [sample_scene(CFG, s, "biased") for s in range(3000)]
    with_a = [s for s in with_a if a in s.categories()]
    rate = np.mean([b in s.categories() for s in with_a])
    assert abs(rate - p) < 0.06, rate
    partners = [s.group(b).size for s in with_a if b in s.categories()]
    assert np.mean([z == "small" for z in partners]) > 0.7


def test_questions_have_consistent_reference_answers():
    rng = np.random.default_rng(0)
    for seed in range(200):
        scene = sample_scene(CFG, seed, "free")
        for task in ("exist", "attribute", "color", "count", "relation"):
            qa = question(scene, task, rng, CFG.categories, CFG.colors)
            if qa is None:
                assert task == "relation"
                continue
            q, ref = qa
            assert set(words(q + " " + ref)) <= set(lexicon(CFG.categories, CFG.colors))
            pq, pr = parse(q), parse(ref)
            asked = pq.mentions[0]
            if task == "exist":
                assert (pr.answer == "yes") == (asked.category in scene.categories())
            elif task == "attribute":
                assert (pr.answer == "yes") == (scene.group(asked.category).color == asked.color)
            elif task == "color":
                assert pr.objects()[asked.category].color == scene.group(asked.category).color
            elif task == "relation":
                [(a, rel, b)] = pr.category_relations()
                assert relation(scene.group(a), scene.group(b)) == {rel}
                assert rel in words(q)


def test_parser_reads_negation_counts_relations_and_bare_answers():
    p = parse("No, there is no tree. There are two red balls to the left of a star.")
    assert p.answer == "no" and p.negated() == {"tree"}
    assert p.objects()["ball"].count == 2 and p.objects()["ball"].color == "red"
    assert p.category_relations() == [("ball", "left", "star")]
    assert parse("blue.").loose_colors == ["blue"] and parse("three.").loose_counts == [3]
    assert parse("a a a").loose_counts == []  # articles alone are no count


def test_unknown_words_are_ignored_and_counted():
    p = parse("a red zebra next to a shiny blue ball, wow")
    assert p.unknown == ["zebra", "next", "shiny", "wow"]
    assert set(p.objects()) == {"ball"}
    synth = WorldRenderer(CFG)
    neg = synth.synthesize("a glorious purple key beside a tree", None, seed=0)
    assert neg.ok and neg.image.size == (CFG.image_size, CFG.image_size)
    assert synth.unknown_words == {"glorious": 1, "beside": 1}


@pytest.mark.parametrize("text", ["", "zebras everywhere", "!!!", "describe this image."])
def test_a_description_with_no_object_is_a_failed_negative(text):
    synth = WorldRenderer(CFG)
    neg = synth.synthesize(text, None, seed=0)
    assert not neg.ok and neg.image is None and "no object" in neg.error
    assert synth.failures == 1


def test_an_answer_naming_nothing_is_described_and_drawn_as_an_empty_scene():
    from ovip.world.judge import EMPTY_SCENE, WorldDescriber

    d = WorldDescriber().describe("describe this image.", "a red ball.", "." * 40)
    assert d.ok and d.text == EMPTY_SCENE
    neg = WorldRenderer(CFG).synthesize(d.text, None, seed=3)
    assert neg.ok and neg.image.size == (CFG.image_size, CFG.image_size)


def test_a_description_of_absence_renders_an_empty_canvas():
    neg = WorldRenderer(CFG).synthesize("no tree.", None, seed=0)
    assert neg.ok
