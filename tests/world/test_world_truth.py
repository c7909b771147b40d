"""`world.truth.answer`: the true answer of a question about any scene, checked against the splits' own
references and on scenes built by hand."""

from ovip.config.world import WorldConfig
from ovip.world.scene import Group, Scene
from ovip.world.splits import make_split
from ovip.world.text import describe
from ovip.world.truth import answer, holds

CFG = WorldConfig()


def test_reproduces_the_references_the_splits_wrote():
    """Every question of the question splits gets back exactly its policy-voice reference."""
    n = 0
    for split in ("mmhal", "general", "amber_dis"):
        for ex in make_split(CFG, split, 40):
            assert answer(ex.query, ex.scene, CFG.categories, CFG.colors) == ex.reference, ex.query
            n += 1
    assert n == 120


def test_hand_built_scenes():
    ball = Group("ball", "red", "large", 0.3, ((0.2, 0.5),))
    boxes = Group("box", "blue", "small", 0.2, ((0.8, 0.5), (0.8, 0.2)))
    scene = Scene((ball, boxes))
    assert answer("is there a ball in the image?", scene) == "there is a red ball, so yes."
    assert answer("is there a tree in the image?", scene) == "there is no tree, so no."
    assert answer("is the ball blue?", scene) == "the ball is red, so no."
    assert answer("what color are the boxes?", scene) == "the boxes are blue."
    assert answer("how many boxes are there?", scene) == "there are two boxes."
    assert answer("how many trees are there?", scene) == "there are no trees."
    assert answer("describe this image.", scene) == describe(scene)
    # the boxes are two: no single relation to the ball
    assert answer("is the ball to the left or to the right of the box?", scene) is None
    key = Group("key", "white", "large", 0.3, ((0.8, 0.5),))
    pair = Scene((ball, key))
    assert (
        answer("is the ball to the left or to the right of the key?", pair)
        == "the ball is to the left of the key."
    )
    assert answer("is the ball above or below the key?", pair) is None  # one row: neither holds


def test_holds_checks_claims_not_omissions():
    ball = Group("ball", "red", "large", 0.3, ((0.2, 0.5),))
    boxes = Group("box", "blue", "small", 0.2, ((0.8, 0.5), (0.8, 0.2)))
    scene = Scene((ball, boxes))
    describe_q = "describe this image."
    assert holds(describe_q, "there is a red ball.", scene)  # the boxes left out: not a falsehood
    assert holds(describe_q, "there is a ball and two blue boxes.", scene)
    assert not holds(describe_q, "there is a green ball.", scene)  # wrong colour
    assert not holds(describe_q, "there are three boxes.", scene)  # wrong count
    assert not holds(describe_q, "there is a red ball and a tree.", scene)  # an object that is not there
    assert holds("is there a tree in the image?", "no, there is no tree.", scene)
    assert not holds("is there a tree in the image?", "yes.", scene)
    assert holds("what color is the ball?", "red.", scene) and not holds(
        "what color is the ball?", "blue.", scene
    )
    assert holds("how many boxes are there?", "two.", scene) and not holds(
        "how many boxes are there?", "one.", scene
    )
    assert holds("is the ball to the left or to the right of the box?", "left.", scene) is None
