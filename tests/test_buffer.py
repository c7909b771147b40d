"""The experience buffer (Appendix F): N drawn without replacement, the rest kept, state saved and restored."""

import json

import pytest

from ovip.buffer import ExperienceBuffer
from ovip.records import PairExperience as Experience


def exp(i: int) -> Experience:
    return Experience(
        example_id=f"e{i}",
        query="q",
        image_path="a.png",
        negative_image_path="b.png",
        chosen=f"c{i}",
        rejected=f"r{i}",
        chosen_score=9.0,
        rejected_score=1.0,
        fallback=False,
        description="d",
        reference_logps={"chosen|image": -1.0},
        step=i,
        negative_seed=i,
    )


def test_sample_removes_n_and_keeps_the_rest_in_order():
    buf = ExperienceBuffer(seed=0)
    buf.add([exp(i) for i in range(10)])
    drawn = buf.sample(4)
    assert len(drawn) == 4 and len(buf) == 6
    ids = [e.example_id for e in drawn] + [e.example_id for e in buf.items]
    assert sorted(ids) == sorted(f"e{i}" for i in range(10))  # nothing lost, nothing twice
    kept = [int(e.example_id[1:]) for e in buf.items]
    assert kept == sorted(kept)  # the experiences left keep their arrival order
    with pytest.raises(ValueError, match="buffer holds 6"):
        buf.sample(7)


def test_state_round_trip_reproduces_the_next_draws(tmp_path):
    a = ExperienceBuffer(seed=3)
    a.add([exp(i) for i in range(12)])
    a.sample(5)
    path = tmp_path / "buffer.json"
    a.save(path)
    json.loads(path.read_text())  # plain JSON
    b = ExperienceBuffer(seed=99)
    b.load(path)
    assert [e.example_id for e in b.items] == [e.example_id for e in a.items]
    assert [e.example_id for e in a.sample(4)] == [e.example_id for e in b.sample(4)]
    assert b.items[0].negative_seed == a.items[0].negative_seed


def test_different_seeds_draw_differently():
    draws = set()
    for seed in range(5):
        buf = ExperienceBuffer(seed=seed)
        buf.add([exp(i) for i in range(20)])
        draws.add(tuple(e.example_id for e in buf.sample(5)))
    assert len(draws) > 1
