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
        pytest.skip(f"AMBER data {d} is absent (junyangwang0410/AMBER data/ files)")
    return d


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_score_responses_on_real_amber(tmp_path, amber_dir, capsys):
    responses = _jsonl(
        tmp_path / "gen.jsonl",
        [
            {"id": 1, "response": "A person on a road by a lake. A dog."},
            {"id": 3, "response": "A child sits in the grass with flowers."},
        ],
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "amber-gen",
                "--responses",
                str(responses),
                "--data",
                str(amber_dir),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    summary = _summary(out)
    assert (summary["benchmark"], summary["n_answered"], summary["n_expected"]) == ("amber-gen", 2, 1004)
    assert summary["complete"] is False and summary["metrics"]["n"] == 2
    m = summary["metrics"]
    # id 1: person road lake dog -> dog hallucinated (1 of 4 mentions); id 3: child grass flower all truth.
    if (m["noun_extractor"], m["matcher"]) == ("builtin-vocabulary", "exact"):
        assert (m["CHAIR"], m["Hal"]) == (14.3, 50.0)
    printed = capsys.readouterr().out
    assert "2 of 1004 answered (PARTIAL)" in printed and "CHAIR" in printed
    # what CHAIR cannot see: length and repetition (no parser needed); unknown cut for answers from a file
    deg = m["degeneration"]
    assert deg["words"] == pytest.approx((10 + 8) / 2) and deg["rep_3"] == 0 and deg["cut"] is None

    dis = _jsonl(tmp_path / "dis.jsonl", [{"id": 1005, "response": "Yes"}, {"id": 1006, "response": "No."}])
    assert (
        main(["eval", "amber-dis", "--responses", str(dis), "--data", str(amber_dir), "--output", str(out)])
        == 0
    )
    assert _summary(out)["metrics"]["Accuracy"] == 100.0


def test_bad_responses_file_exits_2_listing_the_ids(tmp_path, amber_dir, capsys):
    bad = _jsonl(
        tmp_path / "bad.jsonl",
        [{"id": 1, "response": 3}, {"id": 99999, "response": "x"}, {"id": 2, "response": "A dog."}],
    )
    out = tmp_path / "out"
    assert (
        main(["eval", "amber-gen", "--responses", str(bad), "--data", str(amber_dir), "--output", str(out)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("ovip: error:")
    assert "1 responses that are not strings (id): 1" in err and "1 ids not in the benchmark: 99999" in err
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "amber-gen", "--data", "."], "give either --responses FILE"),
        (
            ["eval", "amber-gen", "--model", "m", "--responses", "r", "--data", "."],
            "give either --responses FILE",
        ),
        (["eval", "amber-gen", "--responses", "r.jsonl"], "needs --data DIR"),
        (["eval", "pope", "--responses", "r.jsonl"], "unknown benchmark 'pope'"),
        (["eval", "mmhal", "--responses", "r.jsonl", "--data", "."], "pass --eval.judge.base_url URL"),
        (["eval", "world", "--responses", "r.jsonl"], "--responses and --data do not apply"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _fake_amber(root, n=5, missing_image=None):
    """An AMBER-like folder: n generative ids with ground truth, query file and images/AMBER_<id>.jpg."""
    root.mkdir()
    (root / "images").mkdir()
    annotations = [
        {"id": i, "type": "generative", "truth": ["cat", "tree"], "hallu": ["dog"]} for i in range(1, n + 1)
    ]
    (root / "annotations.json").write_text(json.dumps(annotations))
    (root / "relation.json").write_text(json.dumps({"cat": [], "tree": [], "dog": []}))
    (root / "safe_words.txt").write_text("light")
    queries = [
        {"id": i, "image": f"AMBER_{i}.jpg", "query": "describe this image ."} for i in range(1, n + 1)
    ]
    (root / "query_generative.json").write_text(json.dumps(queries))
    for i in range(1, n + 1):
        if i != missing_image:
            Image.new("RGB", (40, 30), (40 * i, 20, 200)).save(root / "images" / f"AMBER_{i}.jpg")
    return root


def test_generate_then_resume_only_the_missing_ids(tmp_path, tiny_dir):
    data, out = _fake_amber(tmp_path / "amber"), tmp_path / "out"
    argv = [
        "eval",
        "amber-gen",
        "--model",
        str(tiny_dir),
        "--data",
        str(data),
        "--output",
        str(out),
        "--eval.batch_size",
        "2",
        "--eval.max_new_tokens",
        "6",
    ]
    assert main(argv) == 0
    first = (out / "responses.jsonl").read_text()
    assert [json.loads(line)["id"] for line in first.splitlines()] == [1, 2, 3, 4, 5]
    summary = _summary(out)
    assert (summary["n_generated"], summary["n_resumed"], summary["complete"]) == (5, 0, True)
    assert summary["metrics"]["n"] == 5 and summary["decoding"]["temperature"] == 0.1
    assert all(isinstance(json.loads(line)["cut"], bool) for line in first.splitlines())
    assert summary["metrics"]["degeneration"]["cut"] is not None
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
    assert (
        main(
            [
                "eval",
                "amber-gen",
                "--model",
                str(tiny_dir),
                "--data",
                str(data),
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "1 of 4 images are missing under" in err and "(ids: 3)" in err


def test_world_suite(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("OVIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    sizes = "{amber_gen: 2, amber_dis: 2, objecthal: 2, mmhal: 2, llava_bench: 2, general: 2}"
    assert (
        main(
            [
                "eval",
                "world",
                "--model",
                str(tiny_dir),
                "--output",
                str(out),
                "--eval.max_new_tokens",
                "4",
                "--world.pretrain_size",
                "2",
                "--world.preference_size",
                "2",
                "--world.eval_sizes",
                sizes,
            ]
        )
        == 0
    )
    metrics = _summary(out)["metrics"]
    splits = ("amber_gen", "amber_dis", "objecthal", "mmhal", "llava_bench", "general")
    assert all(metrics[s]["n"] == 2 for s in splits)
    assert set(metrics["hri_inputs"]) == {
        "amber_gen_f1",
        "mmhal_score",
        "objecthal_f1",
        "llava_bench",
        "amber_dis_f1",
    }
    assert all("parse_rate" in metrics[s]["fluency"] for s in splits)
    # every benchmark's answers, one JSON object per item, beside summary.json, and they give back its numbers
    from conftest import check_world_items

    assert _summary(out)["items"] == {s: f"{s}.jsonl" for s in splits}
    items = {s: [json.loads(x) for x in (out / f"{s}.jsonl").read_text().splitlines()] for s in splits}
    check_world_items(metrics, items)


def test_world_suite_decodes_like_the_quickstart(tmp_path, tiny_dir, monkeypatch):
    """Without --config, `ovip eval world` takes the world recipe's decoding (the quickstart's), and records it."""
    from ovip.config import load

    monkeypatch.setenv("OVIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    sizes = "{amber_gen: 1, amber_dis: 1, objecthal: 1, mmhal: 1, llava_bench: 1, general: 1}"
    assert (
        main(
            [
                "eval",
                "world",
                "--model",
                str(tiny_dir),
                "--output",
                str(out),
                "--world.pretrain_size",
                "2",
                "--world.preference_size",
                "2",
                "--world.eval_sizes",
                sizes,
            ]
        )
        == 0
    )
    decoding = _summary(out)["decoding"]
    world_eval = load("world").eval
    assert decoding["max_new_tokens"] == world_eval.max_new_tokens == 128
    assert decoding["temperature"] == world_eval.temperature and decoding["top_p"] == world_eval.top_p


def test_help_lists_every_benchmark(capsys):
    from ovip.eval_cli import BENCHMARKS

    with pytest.raises(SystemExit) as done:
        main(["eval", "--help"])
    assert done.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    missing = [name for name in ["world", *BENCHMARKS] if name not in shown]
    assert not missing, f"`ovip eval --help` does not name {missing}"


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("build", ["tiny_qwen2_vl", "tiny_qwen2_5_vl"])
def test_qwen_folder_through_the_cli(build, tmp_path):
    """A saved Qwen2-VL / Qwen2.5-VL folder answers a benchmark through `ovip eval --model FOLDER` (no
    torchvision needed); --limit 2 answers and scores the first 2 of 5 questions; the device is recorded."""
    import tiny_qwen as tiny

    folder = tmp_path / build
    model, processor = getattr(tiny, build)()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    data, out = _fake_amber(tmp_path / "amber"), tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "amber-gen",
                "--model",
                str(folder),
                "--data",
                str(data),
                "--output",
                str(out),
                "--limit",
                "2",
                "--eval.max_new_tokens",
                "4",
            ]
        )
        == 0
    )
    summary = _summary(out)
    assert [json.loads(line)["id"] for line in (out / "responses.jsonl").read_text().splitlines()] == [1, 2]
    assert (summary["n_generated"], summary["n_expected"], summary["complete"], summary["limit"]) == (
        2,
        2,
        True,
        2,
    )
    assert summary["metrics"]["n"] == 2 and summary["device"] == _device()


def test_limit_scores_the_first_n_and_ignores_the_rest(tmp_path, amber_dir):
    answers = _jsonl(
        tmp_path / "dis.jsonl",
        [{"id": 1005, "response": "Yes"}, {"id": 1006, "response": "No"}, {"id": 1007, "response": "maybe"}],
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "amber-dis",
                "--responses",
                str(answers),
                "--data",
                str(amber_dir),
                "--output",
                str(out),
                "--limit",
                "2",
            ]
        )
        == 0
    )
    summary = _summary(out)
    assert (summary["n_answered"], summary["n_expected"], summary["metrics"]["n"]) == (2, 2, 2)
    assert summary["metrics"]["n_invalid"] == 0  # "maybe" (id 1007) is beyond the limit


def _amber_repository(root, amber_dir):
    """AMBER as its repository lays it out: data/{annotations,relation}.json, data/safe_words.txt,
    data/query/query_*.json (links to the real files)."""
    (root / "data" / "query").mkdir(parents=True)
    for name in ("annotations.json", "relation.json", "safe_words.txt"):
        (root / "data" / name).symlink_to(amber_dir / name)
    for task in ("generative", "discriminative"):
        (root / "data" / "query" / f"query_{task}.json").symlink_to(amber_dir / f"query_{task}.json")
    return root


def test_amber_repository_layout(tmp_path, amber_dir, tiny_dir, capsys):
    repo = _amber_repository(tmp_path / "AMBER", amber_dir)
    answers = _jsonl(tmp_path / "gen.jsonl", [{"id": 1, "response": "A person on a road by a lake. A dog."}])
    out = tmp_path / "out"
    assert (
        main(["eval", "amber-gen", "--responses", str(answers), "--data", str(repo), "--output", str(out)])
        == 0
    )
    assert (_summary(out)["n_expected"], _summary(out)["metrics"]["n"]) == (1004, 1)
    # Generation: the repository's query files name AMBER_<n>.jpg, looked up in the image/ folder.
    (repo / "image").mkdir()
    Image.new("RGB", (40, 30), (90, 20, 200)).save(
        repo / "image" / "AMBER_1.jpg"
    )  # ids 1005, 1006 ask about it
    assert (
        main(
            [
                "eval",
                "amber-dis",
                "--model",
                str(tiny_dir),
                "--data",
                str(repo),
                "--output",
                str(out),
                "--limit",
                "2",
                "--eval.max_new_tokens",
                "3",
            ]
        )
        == 0
    )
    summary = _summary(out)
    assert (summary["n_generated"], summary["metrics"]["n"]) == (2, 2)
    printed = capsys.readouterr().out
    assert "n_invalid" in printed and "existence/F1" in printed


def test_dis_table_leaves_empty_dimensions_blank(tmp_path, amber_dir, capsys):
    """Only relation questions answered: the existence rows print no number (a blank, not 0.0)."""
    answers = _jsonl(tmp_path / "dis.jsonl", [{"id": 13557, "response": "Yes"}])
    assert (
        main(
            [
                "eval",
                "amber-dis",
                "--responses",
                str(answers),
                "--data",
                str(amber_dir),
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        cells = [c.strip() for c in line.split("│")]  # "│ name │ value │" -> ["", name, value, ""]
        if len(cells) == 4:
            rows[cells[1]] = cells[2]
    assert rows["relation/n"] == "1" and rows["existence/n"] == "0"
    assert rows["existence/F1"] == "" and rows["existence/Accuracy"] == ""


def test_objecthal_released_file_with_coco_annotations(tmp_path, tiny_dir, shared_data):
    """Object HalBench as released: obj_halbench_300_with_image.jsonl ({image_id, question, image: base64}),
    synonyms_refine.txt, and COCO 2014's annotations/ for the ground truth; the judge is a local
    chat-completions server that extracts ["dog", "cat"] from every answer.
    GT: image 42 = {dog} (instances), image 43 = {cat} (caption "A cat sleeps."). Both answers mention dog and
    cat: CHAIR_r = 2/2 = 100, CHAIR_i = 2 hallucinated of 4 = 50, recall = 2/2 = 100."""
    import base64
    import io

    from ovip.services.chat_server import make_app, serve_in_thread

    syn = shared_data / "chair" / "synonyms.txt"
    if not syn.exists():
        pytest.skip(f"CHAIR synonyms {syn} are absent (LisaAnne/Hallucination data/synonyms.txt)")
    data = tmp_path / "objhal"
    (data / "annotations").mkdir(parents=True)
    (data / "synonyms_refine.txt").write_text(syn.read_text())
    lines = []
    for image_id in (42, 43):
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), (image_id, 90, 20)).save(buf, format="JPEG")
        lines.append(
            {
                "image_id": image_id,
                "question": "Describe this image in detail.",
                "image": base64.b64encode(buf.getvalue()).decode(),
            }
        )
    _jsonl(data / "obj_halbench_300_with_image.jsonl", lines)
    (data / "annotations" / "instances_val2014.json").write_text(
        json.dumps(
            {"categories": [{"id": 18, "name": "dog"}], "annotations": [{"image_id": 42, "category_id": 18}]}
        )
    )
    (data / "annotations" / "captions_val2014.json").write_text(
        json.dumps({"annotations": [{"image_id": 43, "caption": "A cat sleeps."}]})
    )
    out = tmp_path / "out"
    with serve_in_thread(make_app(lambda messages, params: '["dog", "cat"]')) as url:
        assert (
            main(
                [
                    "eval",
                    "objecthal",
                    "--model",
                    str(tiny_dir),
                    "--data",
                    str(data),
                    "--output",
                    str(out),
                    "--eval.judge.base_url",
                    url,
                    "--eval.max_new_tokens",
                    "8",
                    "--eval.greedy",
                    "true",
                ]
            )
            == 0
        )
    summary = _summary(out)
    ids = [json.loads(line)["id"] for line in (out / "responses.jsonl").read_text().splitlines()]
    assert ids == [42, 43] and summary["complete"]
    m = summary["metrics"]
    # Answers of <= 3 words get no extraction call (Object HalBench's rule), so pin the words: 8 greedy tokens.
    assert all(
        len(r.split()) > 3
        for r in (json.loads(x)["response"] for x in (out / "responses.jsonl").read_text().splitlines())
    )
    assert (m["CHAIR_r"], m["CHAIR_i"], m["recall"]) == (100.0, 50.0, 100.0)
