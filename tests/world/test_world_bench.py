"""World benchmarks: an oracle scores perfectly, a prior-driven hallucinator is caught and attributed."""

import pytest

from ovip.config.world import EVAL_SPLITS, WorldConfig
from ovip.eval.metrics import HRI_KEYS
from ovip.records import Answer
from ovip.world.bench import evaluate_world, evaluate_world_items
from ovip.world.build import build_world
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
    return lambda images, queries: [
        Answer(edit(*table[(im.tobytes(), q)]), cut=False) for im, q in zip(images, queries, strict=True)
    ]


def test_an_oracle_scores_perfectly(world):
    res = evaluate_world(oracle(world), world, progress=False)
    assert (
        res["amber_gen"]["chair"] == 0 and res["amber_gen"]["cover"] == 100 and res["amber_gen"]["f1"] == 100
    )
    assert (
        res["amber_dis"]["f1"] == 100
        and res["amber_dis"]["n_bait"] > 0
        and res["amber_dis"]["bait_accuracy"] == 100
    )
    assert res["objecthal"]["chair_r"] == 0 and res["objecthal"]["f1"] == 100
    assert res["mmhal"]["score"] == 6 and res["mmhal"]["hallucination_rate"] == 0
    assert res["llava_bench"]["score"] == 100
    assert res["general"]["accuracy"] == 100
    assert set(res["hri_inputs"]) == set(HRI_KEYS)
    assert res["amber_gen"]["samples"][0]["response"] == res["amber_gen"]["samples"][0]["reference"]


def test_prior_hallucinations_are_caught_and_attributed(world):
    partner = {a: b for a, b, _ in CFG.co_occurrence}

    def add_partner(ex, ref):  # name the prior's absent partner of every anchor, as a biased model would
        if ex.meta["task"] != "describe":
            return "yes." if parse(ref).answer == "no" else ref
        cats = set(parse(ref).objects())
        extra = [partner[a] for a in cats if a in partner and partner[a] not in cats]
        return ref[:-1] + "".join(f" and a small green {b}" for b in extra) + "."

    res = evaluate_world(oracle(world, add_partner), world, progress=False)
    gen = res["amber_gen"]
    assert gen["chair"] > 5 and gen["cover"] == 100 and gen["cog"] == 100
    assert gen["prior_share"] == gen["co_occurrence_share"] == 100
    assert gen["partner_rate"] == 100 and gen["partner_rate_heldout"] == 100
    # ObjectHal is half counter-prior scenes (the rest keep their partners): exactly those hallucinate
    baited = [
        ex
        for ex in load_split(world["objecthal"])[0]
        if any(
            a in set(parse(ex.reference).objects()) and b not in set(parse(ex.reference).objects())
            for a, b in partner.items()
        )
    ]
    assert 0 < len(baited) < CFG.eval_sizes["objecthal"]
    assert res["objecthal"]["chair_r"] == pytest.approx(100 * len(baited) / CFG.eval_sizes["objecthal"])
    assert res["amber_dis"]["bait_accuracy"] == 0 and res["amber_dis"]["f1"] < 100
    assert res["mmhal"]["score"] < 6 and res["general"]["accuracy"] < 100


def test_item_records_give_back_every_summary(world):
    """A model that names the prior's absent partner in every description and says "yes" to every "no" question
    (CHAIR > 0, wrong yes/no answers, lower judge scores): each split's item records recompute its summary, and
    an item's hallucinated objects are the partners it added."""
    from conftest import check_world_items

    partner = {a: b for a, b, _ in CFG.co_occurrence}

    def add_partner(ex, ref):
        if ex.meta["task"] != "describe":
            return "yes." if parse(ref).answer == "no" else ref
        cats = set(parse(ref).objects())
        extra = [partner[a] for a in cats if a in partner and partner[a] not in cats]
        return ref[:-1] + "".join(f" and a small green {b}" for b in extra) + "."

    results, items = evaluate_world_items(oracle(world, add_partner), world, progress=False)
    assert results == evaluate_world(oracle(world, add_partner), world, progress=False)
    check_world_items(results, items)
    assert results["amber_gen"]["chair"] > 5 and results["amber_dis"]["accuracy"] < 100
    examples = {ex.id: ex for ex in load_split(world["amber_gen"])[0]}
    for item in items["amber_gen"]:
        ex = examples[item["id"]]
        assert (item["query"], item["reference"]) == (ex.query, ex.reference)
        assert item["answer"] == add_partner(ex, ex.reference) and item["cut"] is False
        present = set(parse(ex.reference).objects())
        expected = sorted(partner[a] for a in present if a in partner and partner[a] not in present)
        assert sorted(item["hallucinated"]) == expected
        assert set(item["prior_kinds"]) <= {"co_occurrence"}


def test_item_counts_give_back_the_summary(world):
    """`ovip.world.counts` (what the experiment's paired bootstrap resamples) recomputes each summary metric from
    the item records of the prior-driven model: CHAIR, Cover, F1, partner rate, ObjHal CHAIR_r and F1, AMBER-dis
    F1, MMHal and LLaVA-Bench (the last two rounded in the summary); a record without a counted field is a
    one-line error naming the item."""
    from ovip.world import counts

    partner = {a: b for a, b, _ in CFG.co_occurrence}

    def add_partner(ex, ref):
        if ex.meta["task"] != "describe":
            return "yes." if parse(ref).answer == "no" else ref
        cats = set(parse(ref).objects())
        return ref[:-1] + "".join(f" and a small green {partner[a]}" for a in cats if a in partner) + "."

    results, items = evaluate_world_items(oracle(world, add_partner), world, progress=False)
    expected = {
        "chair": results["amber_gen"]["chair"],
        "cover": results["amber_gen"]["cover"],
        "amber_gen_f1": results["amber_gen"]["f1"],
        "partner_rate": results["amber_gen"]["partner_rate"],
        "objecthal_chair_r": results["objecthal"]["chair_r"],
        "objecthal_f1": results["objecthal"]["f1"],
        "amber_dis_f1": results["amber_dis"]["f1"],
        "mmhal_score": results["mmhal"]["score"],
        "llava_bench": results["llava_bench"]["score"],
    }
    assert results["amber_gen"]["partner_rate"] > 50 and results["objecthal"]["chair_r"] > 0
    for name, value in expected.items():
        metric = counts.METRICS[name]
        assert counts.point(name, items[metric.split]) == pytest.approx(value, abs=0.05), name
    assert set(counts.HRI_INPUTS) == set(HRI_KEYS)
    broken = [{k: v for k, v in items["amber_gen"][0].items() if k != "partners_named"}]
    with pytest.raises(ValueError, match=f"amber_gen item '{broken[0]['id']}': no field 'partners_named'"):
        counts.table("amber_gen", broken)


def test_discriminative_split_is_balanced_and_reports_constant_answers(world):
    res = evaluate_world(
        oracle(world, lambda ex, ref: "no."), {"amber_dis": world["amber_dis"]}, progress=False
    )
    dis = res["amber_dis"]
    assert (
        dis["f1"] == pytest.approx(dis["constant_no_f1"])
        and dis["yes_accuracy"] == 0
        and dis["no_accuracy"] == 100
    )
    assert 55 < dis["constant_no_f1"] < 75  # about half the answers are "no": F1 2p/(1+p) near 2/3
    assert dis["ci"]["f1"][0] <= dis["f1"] <= dis["ci"]["f1"][1]


def test_degenerate_answers_are_flagged_and_intervals_hold_the_estimate(world):
    degenerate = (
        "a yellow cup, a yellow tree and a green bell. green bell and a green bell a green bell and a "
        "green bell a yellow cup and a yellow cup. a yellow bell and a yellow tree"
    )
    res = evaluate_world(
        oracle(world, lambda ex, ref: degenerate), {"amber_gen": world["amber_gen"]}, progress=False
    )
    flu = res["amber_gen"]["fluency"]
    assert flu["parse_rate"] == 0 and flu["mention_repetition"] > 50 and flu["rep_3"] > 20
    clean = evaluate_world(oracle(world), {"amber_gen": world["amber_gen"]}, progress=False)["amber_gen"]
    assert clean["fluency"]["parse_rate"] == 100 and clean["fluency"]["mention_repetition"] == 0
    assert clean["fluency"]["cut"] == 0
    gen = res["amber_gen"]
    # CHAIR counted once per object per answer: distinct hallucinated objects / distinct objects named
    from ovip.world.scene import Scene

    said = {m.category for m in parse(degenerate).mentions}
    truths = [Scene.from_dict(ex.meta["scene"]).categories() for ex in load_split(world["amber_gen"])[0]]
    expected = 100 * sum(len(said - t) for t in truths) / (len(said) * len(truths))
    assert gen["chair_unique"] == pytest.approx(expected) and gen["chair_unique"] != gen["chair"]
    for name in ("chair", "cover", "f1", "chair_unique"):
        low, high = gen["ci"][name]
        assert low <= gen[name] + 1e-9 and gen[name] <= high + 1e-9


def test_unknown_split_is_an_error(world):
    with pytest.raises(ValueError, match="no world benchmark"):
        evaluate_world(oracle(world), {"nope": world["general"]}, progress=False)


def test_prior_kind_names_the_prior_behind_a_hallucination():
    from ovip.world.bench import prior_kind
    from ovip.world.parse import Mention
    from ovip.world.scene import Group, Scene
    from ovip.world.splits import split_meta

    meta = split_meta(CFG, "amber_gen")
    scene = Scene(
        (
            Group("moon", "white", "large", 0.2, ((0.1, 0.1),)),
            Group("tree", "yellow", "large", 0.2, ((0.6, 0.6),)),
        )
    )
    assert prior_kind(Mention("star", "white"), scene, meta) == "co_occurrence"  # moon -> star
    assert prior_kind(Mention("ball", "red"), scene, meta) is None
    no_moon = Scene(scene.groups[1:])
    assert prior_kind(Mention("star", "yellow"), no_moon, meta) == "color"  # the yellow tree named a star
    assert prior_kind(Mention("star", "blue"), no_moon, meta) is None
