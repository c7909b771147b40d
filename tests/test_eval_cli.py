"""`ovip eval` end to end through `ovip.cli.main`: scoring a responses file, bad input, generation with
resume on a tiny random LLaVA, and the built-in world's suite. Assertions are on OUTPUT's files."""

import json

import pytest
from PIL import Image

from ovip.cli import main
from ovip.policy.tiny import tiny_llava


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A 2-layer random LLaVA saved as a Hugging Face folder (loads with the Auto classes)."""
    d = tmp_path_factory.mktemp("tiny-llava")
    model, processor = tiny_llava()
    model.save_pretrained(d)
    processor.save_pretrained(d)
    return d


@pytest.fixture
def amber_dir(shared_data):
    d = shared_data / "amber"
    if not (d / "annotations.json").exists():
        pytest.skip(f"AMBER data {d} is absent (see notes/benchmarks.md §9)")
    return d


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_score_responses_on_real_amber(tmp_path, amber_dir, capsys):
    responses = _jsonl(tmp_path / "gen.jsonl", [{"id": 1, "response": "A person on a road by a lake. A dog."},
                                                {"id": 3, "response": "A child sits in the grass with flowers."}])
    out = tmp_path / "out"
    assert main(["eval", "amber-gen", "--responses", str(responses), "--data", str(amber_dir),
                 "--output", str(out)]) == 0
    summary = _summary(out)
    assert (summary["benchmark"], summary["n_answered"], summary["n_expected"]) == ("amber-gen", 2, 1004)
    assert summary["complete"] is False and summary["metrics"]["n"] == 2
    m = summary["metrics"]
    # id 1: person road lake dog -> dog hallucinated (1 of 4 mentions); id 3: child grass flower all truth.
    if (m["noun_extractor"], m["matcher"]) == ("builtin-vocabulary", "exact"):
        assert (m["CHAIR"], m["Hal"]) == (14.3, 50.0)
    printed = capsys.readouterr().out
    assert "2 of 1004 answered (PARTIAL)" in printed and "CHAIR" in printed

    dis = _jsonl(tmp_path / "dis.jsonl", [{"id": 1005, "response": "Yes"}, {"id": 1006, "response": "No."}])
    assert main(["eval", "amber-dis", "--responses", str(dis), "--data", str(amber_dir),
                 "--output", str(out)]) == 0
    assert _summary(out)["metrics"]["Accuracy"] == 100.0


def test_bad_responses_file_exits_2_listing_the_ids(tmp_path, amber_dir, capsys):
    bad = _jsonl(tmp_path / "bad.jsonl", [{"id": 1, "response": 3}, {"id": 99999, "response": "x"},
                                          {"id": 2, "response": "A dog."}])
    out = tmp_path / "out"
    assert main(["eval", "amber-gen", "--responses", str(bad), "--data", str(amber_dir),
                 "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ovip: error:")
    assert "1 responses that are not strings (id): 1" in err and "1 ids not in the benchmark: 99999" in err
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["eval", "amber-gen", "--data", "."], "give either --responses FILE"),
    (["eval", "amber-gen", "--model", "m", "--responses", "r", "--data", "."], "give either --responses FILE"),
    (["eval", "amber-gen", "--responses", "r.jsonl"], "needs --data DIR"),
    (["eval", "pope", "--responses", "r.jsonl"], "unknown benchmark 'pope'"),
    (["eval", "mmhal", "--responses", "r.jsonl", "--data", "."], "pass --judge-url URL"),
    (["eval", "world", "--responses", "r.jsonl"], "--responses and --data do not apply"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _fake_amber(root, n=5, missing_image=None):
    """An AMBER-like folder: n generative ids with ground truth, query file and images/AMBER_<id>.jpg."""
    root.mkdir()
    (root / "images").mkdir()
    annotations = [{"id": i, "type": "generative", "truth": ["cat", "tree"], "hallu": ["dog"]}
                   for i in range(1, n + 1)]
    (root / "annotations.json").write_text(json.dumps(annotations))
    (root / "relation.json").write_text(json.dumps({"cat": [], "tree": [], "dog": []}))
    (root / "safe_words.txt").write_text("light")
    queries = [{"id": i, "image": f"AMBER_{i}.jpg", "query": "describe this image ."} for i in range(1, n + 1)]
    (root / "query_generative.json").write_text(json.dumps(queries))
    for i in range(1, n + 1):
        if i != missing_image:
            Image.new("RGB", (40, 30), (40 * i, 20, 200)).save(root / "images" / f"AMBER_{i}.jpg")
    return root


def test_generate_then_resume_only_the_missing_ids(tmp_path, tiny_dir):
    data, out = _fake_amber(tmp_path / "amber"), tmp_path / "out"
    argv = ["eval", "amber-gen", "--model", str(tiny_dir), "--data", str(data), "--output", str(out),
            "--eval.batch_size", "2", "--eval.max_new_tokens", "6"]
    assert main(argv) == 0
    first = (out / "responses.jsonl").read_text()
    assert [json.loads(line)["id"] for line in first.splitlines()] == [1, 2, 3, 4, 5]
    summary = _summary(out)
    assert (summary["n_generated"], summary["n_resumed"], summary["complete"]) == (5, 0, True)
    assert summary["metrics"]["n"] == 5 and summary["decoding"]["temperature"] == 0.1
    assert summary["model"] == str(tiny_dir.resolve())

    # Interrupted after the first batch, in the middle of writing id 3: keep 2 lines plus a torn one.
    lines = first.splitlines(keepends=True)
    (out / "responses.jsonl").write_text("".join(lines[:2]) + lines[2][:10])
    assert main(argv) == 0
    summary = _summary(out)
    assert (summary["n_generated"], summary["n_resumed"], summary["metrics"]["n"]) == (3, 2, 5)
    # Batches resume at the same boundaries with the same seeds, so the answers are the same as before.
    assert (out / "responses.jsonl").read_text() == first

    # A rerun with other decoding into the same folder would mix two runs' answers: refused.
    assert main(argv + ["--eval.temperature", "0.5"]) == 2
    assert (out / "responses.jsonl").read_text() == first


def test_missing_images_are_named(tmp_path, tiny_dir, capsys):
    data = _fake_amber(tmp_path / "amber", n=4, missing_image=3)
    assert main(["eval", "amber-gen", "--model", str(tiny_dir), "--data", str(data),
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "1 of 4 images are missing under" in err and "(ids: 3)" in err


def test_world_suite(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("OVIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    sizes = "{amber_gen: 2, amber_dis: 2, objecthal: 2, mmhal: 2, llava_bench: 2, general: 2}"
    assert main(["eval", "world", "--model", str(tiny_dir), "--output", str(out), "--eval.max_new_tokens", "4",
                 "--world.pretrain_size", "2", "--world.preference_size", "2", "--world.eval_sizes", sizes]) == 0
    metrics = _summary(out)["metrics"]
    splits = ("amber_gen", "amber_dis", "objecthal", "mmhal", "llava_bench", "general")
    assert all(metrics[s]["n"] == 2 for s in splits)
    assert set(metrics["hri_inputs"]) == {"amber_gen_f1", "mmhal_score", "objecthal_f1", "llava_bench",
                                          "amber_dis_f1"}
