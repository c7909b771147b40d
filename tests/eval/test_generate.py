"""make_generate_fn (decoding from EvalConfig, model mode restored) and the resume bookkeeping."""

import json

import pytest
from PIL import Image

from ovip.config import EvalConfig
from ovip.eval.generate import answered_ids, make_generate_fn
from ovip.eval.items import Item
from ovip.policy.model import Policy
from ovip.policy.tiny import tiny_llava


def test_generate_fn_one_answer_per_prompt_and_mode_restored():
    model, processor = tiny_llava()
    policy = Policy(model, processor, finetune="none")
    policy.model.train()
    images = [Image.new("RGB", (32, 32), (200, 10, 10)), Image.new("RGB", (32, 32), (0, 0, 250))]
    queries = ["describe this image .", "what color is the ball ?"]
    greedy = make_generate_fn(policy, EvalConfig(greedy=True, max_new_tokens=5))
    a = greedy(images, queries)
    assert len(a) == 2 and all(isinstance(r.text, str) for r in a)
    # `cut` says whether generation stopped at max_new_tokens without an end-of-sequence token
    tok = processor.tokenizer
    assert any(answer.cut for answer in a) and not all(
        answer.cut for answer in a
    )  # this tiny model: one of each
    for (
        answer
    ) in a:  # an answer that ended on its own is shorter than the limit (special tokens are not decoded)
        assert answer.cut or len(tok(answer.text, add_special_tokens=False)["input_ids"]) < 5
    assert greedy(images, queries, seed=123) == a  # greedy ignores the seed
    assert policy.model.training  # a training loop gets its model back in train mode
    sampled = make_generate_fn(policy, EvalConfig(max_new_tokens=5))
    assert sampled(images, queries, seed=7) == sampled(images, queries, seed=7)


def test_answered_ids_drops_a_torn_last_line_and_rejects_foreign_ids(tmp_path):
    items = [Item(i, tmp_path / f"{i}.jpg", "q") for i in (1, 2, 3)]
    path = tmp_path / "responses.jsonl"
    assert answered_ids(path, items) == set()
    path.write_text(json.dumps({"id": 1, "response": "a"}) + "\n" + '{"id": 2, "resp')
    assert answered_ids(path, items) == {"1"}
    assert path.read_text() == json.dumps({"id": 1, "response": "a"}) + "\n"
    path.write_text(json.dumps({"id": 7, "response": "a"}) + "\n")
    with pytest.raises(ValueError, match="ids not in the benchmark"):
        answered_ids(path, items)
