"""World benchmarks: an oracle scores perfectly, a prior-driven hallucinator is caught and attributed."""

import pytest

from ovip.eval.metrics import HRI_KEYS
from ovip.world.bench import evaluate_world
from ovip.world.build import build_world
from ovip.world.config import EVAL_SPLITS, WorldConfig
from ovip.world.parse import parse
from ovip.world.splits import load_split

CFG = WorldConfig(eval_sizes={s: 40 for s in EVAL_SPLITS})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    return build_world(out, CFG, splits=EVAL_SPLITS)


def oracle(folders, edit=lambda ex, ref: ref):
    """generate_fn that answers each (image, query) with its reference, passed through `edit`."""
    table = {}
    for folder in folders.values():
        for ex in load_split(folder)[0]:
            table[(ex.image.tobytes(), ex.query)] = (ex, ex.reference)
    return lambda images, queries: [edit(*table[(im.tobytes(), q)]) for im, q in zip(images, queries, strict=True)]


def test_an_oracle_scores_perfectly(world):
    res = evaluate_world(oracle(world), world, progress=False)
    assert res["amber_gen"]["chair"] == 0 and res["amber_gen"]["cover"] == 100 and res["amber_gen"]["f1"] == 100
    assert res["amber_dis"]["f1"] == 100 and res["amber_dis"]["n_bait"] > 0 and res["amber_dis"]["bait_accuracy"] == 100
    assert res["objecthal"]["chair_r"] == 0 and res["objecthal"]["f1"] == 100
    assert res["mmhal"]["score"] == 6 and res["mmhal"]["hallucination_rate"] == 0
    assert res["llava_bench"]["score"] == 100
    assert res["general"]["accuracy"] == 100
    assert set(res["hri_inputs"]) == set(HRI_KEYS)
    assert res["amber_gen"]["samples"][0]["response"] == res["amber_gen"]["samples"][0]["reference"]


def test_prior_hallucinations_are_caught_and_attributed(world):
    partner = {a: b for a, b, _ in CFG.co_occurrence}

    def add_partner(ex, ref):  # describe the prior's partner of every anchor, as a biased model would
        if ex.meta["task"] != "describe":
            return "yes." if parse(ref).answer == "no" else ref
        cats = set(parse(ref).objects())
        extra = [partner[a] for a in cats if a in partner]
        return ref[:-1] + "".join(f" and a small green {b}" for b in extra) + "."

    res = evaluate_world(oracle(world, add_partner), world, progress=False)
    gen = res["amber_gen"]
    assert gen["chair"] > 10 and gen["cover"] == 100 and gen["cog"] == 100
    assert gen["prior_share"] == gen["co_occurrence_share"] == 100
    assert res["objecthal"]["chair_r"] == 100
    assert res["amber_dis"]["bait_accuracy"] == 0 and res["amber_dis"]["f1"] < 100
    assert res["mmhal"]["score"] < 6 and res["general"]["accuracy"] < 100


def test_unknown_split_is_an_error(world):
    with pytest.raises(ValueError, match="no world benchmark"):
        evaluate_world(oracle(world), {"nope": world["general"]}, progress=False)


def test_prior_kind_names_the_prior_behind_a_hallucination():
    from ovip.world.bench import prior_kind
    from ovip.world.parse import Mention
    from ovip.world.scene import Group, Scene
    from ovip.world.splits import split_meta

    meta = split_meta(CFG, "amber_gen")
    scene = Scene((Group("moon", "white", "large", 0.2, ((0.1, 0.1),)), Group("tree", "yellow", "large", 0.2, ((0.6, 0.6),))))
    assert prior_kind(Mention("star", "white"), scene, meta) == "co_occurrence"  # moon -> star
    assert prior_kind(Mention("ball", "red"), scene, meta) is None
    no_moon = Scene(scene.groups[1:])
    assert prior_kind(Mention("star", "yellow"), no_moon, meta) == "color"  # the yellow tree named a star
    assert prior_kind(Mention("star", "blue"), no_moon, meta) is None
