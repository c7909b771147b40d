"""`world.truth.answer`: the true answer of a question about any scene, checked against the splits' own
references and on scenes built by hand."""

from ovip.world.config import WorldConfig
from ovip.world.scene import Group, Scene
from ovip.world.splits import make_split
from ovip.world.text import describe
from ovip.world.truth import answer

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
