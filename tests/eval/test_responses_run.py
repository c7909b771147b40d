"""Responses files: validation errors, and `evaluate_responses` end to end on the real AMBER files."""

import json

import pytest

from ovip.eval.responses import load_responses, read_responses
from ovip.eval.run import evaluate_responses


def _write(path, records, jsonl=True):
    if jsonl:
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    else:
        path.write_text(json.dumps(records))
    return path


def test_load_jsonl_and_json_list(tmp_path):
    recs = [{"id": 1, "response": "a"}, {"id": "2", "response": "b"}]
    assert load_responses(_write(tmp_path / "r.jsonl", recs), [1, 2]) == {"1": "a", "2": "b"}
    assert load_responses(_write(tmp_path / "r.json", recs, jsonl=False), ["1", "2"]) == {"1": "a", "2": "b"}
    assert load_responses(_write(tmp_path / "s.jsonl", recs[:1]), [1, 2], allow_missing=True) == {"1": "a"}


def test_bad_file_reports_every_problem_at_once(tmp_path):
    recs = [
        {"id": 1, "response": "ok"},
        {"id": 2, "response": 3},
        {"id": 1, "response": "again"},
        {"id": 99, "response": "x"},
        {"text": "no id"},
    ]
    recs += [{"id": 1000 + i, "response": "x"} for i in range(25)]  # 26 unknown ids in all
    with pytest.raises(ValueError) as err:
        load_responses(_write(tmp_path / "bad.jsonl", recs), range(1, 6))
    msg = str(err.value)
    assert "1 records without an 'id' and a 'response'" in msg
    assert "1 responses that are not strings (id): 2" in msg
    assert "1 duplicate ids: 1" in msg
    assert "26 ids not in the benchmark" in msg and "(6 more)" in msg
    assert "3 benchmark ids without a response: '3', '4', '5'" in msg


def test_unparsable_files(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": 1, "response": "x"}\nnot json\n')
    with pytest.raises(ValueError, match="1 lines are not valid JSON: 2"):
        read_responses(tmp_path / "a.jsonl")
    (tmp_path / "b.json").write_text('[{"id": 1,')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_responses(tmp_path / "b.json")


@pytest.fixture
def amber_dir(shared_data):
    d = shared_data / "amber"
    if not (d / "annotations.json").exists():
        pytest.skip(f"AMBER data {d} is absent (AMBER's annotation files)")
    return d


def test_evaluate_amber_real_ids(tmp_path, amber_dir):
    """A few real ids, scored through the public entry point (subset allowed explicitly)."""
    gen = _write(
        tmp_path / "gen.jsonl",
        [
            {"id": 1, "response": "A person on a road by a lake. A dog."},
            {"id": 3, "response": "A child sits in the grass with flowers."},
        ],
    )
    out = evaluate_responses("amber_gen", gen, amber_dir, allow_missing=True)
    assert out["n"] == 2 and out["noun_extractor"] in ("nltk", "builtin-vocabulary")
    # id 1: person road lake dog -> dog hallucinated (1 of 4); id 3: child grass flower all truth (0 of 3).
    if out["noun_extractor"] == "builtin-vocabulary" and out["matcher"] == "exact":
        assert (out["CHAIR"], out["Hal"]) == (14.3, 50.0)
    dis = _write(
        tmp_path / "dis.json",
        [{"id": 1005, "response": "Yes, it is."}, {"id": 1006, "response": "No"}],
        jsonl=False,
    )
    assert evaluate_responses("amber_dis", dis, amber_dir, allow_missing=True)["Accuracy"] == 100.0
    with pytest.raises(ValueError, match="benchmark ids without a response"):
        evaluate_responses("amber_dis", dis, amber_dir)
    with pytest.raises(ValueError, match="ids not in the benchmark"):
        evaluate_responses("amber_gen", dis, amber_dir, allow_missing=True)


def test_evaluate_chair_and_judged(tmp_path, shared_data):
    syn = shared_data / "chair" / "synonyms.txt"
    if not syn.exists():
        pytest.skip(f"CHAIR synonyms {syn} is absent (AMBER's annotation files)")
    (tmp_path / "ground_truth.json").write_text(json.dumps({"10": ["person", "dog"], "11": ["car"]}))
    resp = _write(
        tmp_path / "r.jsonl",
        [{"id": 10, "response": "A man walks two dogs past a bench."}, {"id": 11, "response": "A red car."}],
    )
    out = evaluate_responses("chair", resp, tmp_path, synonyms=syn)
    # mentions: person, dog, bench (hallucinated) | car -> CHAIR_i 1/4, CHAIR_s 1/2, recall 3/3.
    assert (out["CHAIR_i"], out["CHAIR_s"], out["recall"]) == (25.0, 50.0, 100.0)

    (tmp_path / "questions.jsonl").write_text(
        '{"id": 10, "question": "Describe."}\n{"id": 11, "question": "Describe."}\n'
    )
    replies = iter(['["man", "dog", "bench"]'])  # the second answer has <= 3 words: no judge call
    objhal = evaluate_responses("objecthal", resp, tmp_path, synonyms=syn, judge_fn=lambda m: next(replies))
    assert objhal["CHAIR_r"] == 100.0 and objhal["n_extraction_failed"] == 0  # id 11 mentions nothing
    failing = evaluate_responses("objecthal", resp, tmp_path, synonyms=syn, judge_fn=lambda m: "sorry")
    assert failing["n_extraction_failed"] == 1
    with pytest.raises(ValueError, match="needs a judge"):
        evaluate_responses("objecthal", resp, tmp_path, synonyms=syn)
    with pytest.raises(ValueError, match="unknown benchmark"):
        evaluate_responses("pope", resp, tmp_path)


def test_evaluate_mmhal_and_llava_bench_with_fake_judges(tmp_path):
    """MMHal: 2 records, judge rates 5 then fails -> score 5.0, 1 failed. With images_dir the message
    carries the image. LLaVA-Bench: 2 questions, reviews "8 6" and "10 10" -> all = 16/18 = 88.9."""
    records = [
        {
            "question_type": "attribute",
            "image_src": "https://x/a.jpg",
            "image_content": ["Cat"],
            "question": "Color?",
            "gt_answer": "Black.",
        },
        {
            "question_type": "counting",
            "image_src": "https://x/b.jpg",
            "image_content": ["Dog"],
            "question": "How many?",
            "gt_answer": "Two.",
        },
    ]
    (tmp_path / "response_template.json").write_text(json.dumps(records))
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "images" / name).write_bytes(b"jpg")
    resp = _write(tmp_path / "r.jsonl", [{"id": 0, "response": "Black."}, {"id": 1, "response": "Two."}])
    replies, seen = iter(["Rating: 5", "no idea"]), []
    out = evaluate_responses(
        "mmhal",
        resp,
        tmp_path,
        images_dir=tmp_path / "images",
        judge_fn=lambda m: seen.append(m) or next(replies),
    )
    assert (out["score"], out["n_failed"], out["multimodal_judge"]) == (5.0, 1, True)
    assert seen[0][0]["content"][1]["type"] == "image_url"

    lv = tmp_path / "lv"
    lv.mkdir()
    (lv / "questions.jsonl").write_text(
        '{"question_id": 0, "image": "001.jpg", "text": "Q0", "category": "conv"}\n'
        '{"question_id": 1, "image": "001.jpg", "text": "Q1", "category": "detail"}\n'
    )
    (lv / "context.jsonl").write_text('{"id": "c", "image": "001.jpg", "caption": "A cat."}\n')
    (lv / "answers_gpt4.jsonl").write_text(
        '{"question_id": 0, "text": "R0"}\n{"question_id": 1, "text": "R1"}\n'
    )
    resp = _write(tmp_path / "lv.jsonl", [{"id": 0, "response": "A0"}, {"id": 1, "response": "A1"}])
    reviews = iter(["8 6\nok", "10 10\nok"])
    out = evaluate_responses("llava_bench", resp, lv, judge_fn=lambda m: next(reviews))
    assert out["relative"] == 88.9 and out["categories"]["conv"]["relative"] == 75.0


def test_official_answer_files(tmp_path):
    """Each benchmark's own answer format is read as is: LLaVA's model_vqa lines {"question_id", "text", ...},
    MMHal's template with model_answer filled in (ids = positions), Object HalBench's {"image_id", "text"}.
    A record with neither kind of key is reported with the keys that were looked for."""
    lv = tmp_path / "lv"
    lv.mkdir()
    (lv / "questions.jsonl").write_text(
        '{"question_id": 0, "image": "001.jpg", "text": "Q0", "category": "conv"}\n'
    )
    (lv / "context.jsonl").write_text('{"id": "c", "image": "001.jpg", "caption": "A cat."}\n')
    (lv / "answers_gpt4.jsonl").write_text('{"question_id": 0, "text": "R0"}\n')
    llava = _write(
        tmp_path / "answer-file.jsonl",
        [{"question_id": 0, "prompt": "Q0", "text": "A0", "answer_id": "x", "model_id": "m", "metadata": {}}],
    )
    seen = []
    out = evaluate_responses("llava_bench", llava, lv, judge_fn=lambda m: seen.append(m) or "8 6\nok")
    assert out["relative"] == 75.0 and "A0" in seen[0][-1]["content"]

    template = [
        {
            "question_type": t,
            "image_src": f"https://x/{t}.jpg",
            "image_content": [],
            "question": "Q?",
            "gt_answer": "G.",
            "model_answer": a,
        }
        for t, a in (("attribute", "answer-1"), ("counting", "answer-2"))
    ]
    (tmp_path / "mmhal-bench_answer_template.json").write_text(
        json.dumps([{**r, "model_answer": ""} for r in template])
    )
    filled = _write(tmp_path / "filled.json", template, jsonl=False)
    seen = []
    out = evaluate_responses("mmhal", filled, tmp_path, judge_fn=lambda m: seen.append(m) or "Rating: 4")
    assert out["score"] == 4.0 and ["answer-2" in m[0]["content"] for m in seen] == [False, True]

    with pytest.raises(ValueError, match=r"records without an id \('id' \| 'question_id'\) and a text"):
        evaluate_responses(
            "llava_bench", _write(tmp_path / "bad.jsonl", [{"answer": "x"}]), lv, judge_fn=lambda m: "8 6"
        )
