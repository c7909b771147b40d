"""Data and image paths that are not plain files: a FIFO, a device, a folder, a 5,000-character name, a file
over the size limit. Each is a one-line error (a data file) or a named bad record (an image), never a
traceback or a hang. The CLI runs in a subprocess with a timeout, so a reader that blocks on a FIFO or reads
/dev/zero forever fails the test instead of hanging the suite."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from ovip.config import load
from ovip.data import files
from ovip.data.check import check_examples
from ovip.data.load import load_examples
from ovip.train.setup import load_training_examples


def ovip(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "ovip.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def row(example_id, image, query="q", reference="r"):
    return {"id": example_id, "image": str(image), "query": query, "reference": reference}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_5000_character_image_name_is_a_named_bad_record(tmp_path):
    """`Path.is_file()` raised OSError(ENAMETOOLONG) out of the check: a traceback from `ovip data check` and
    from `ovip train`, with --train.skip_invalid true too."""
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    data = write_jsonl(tmp_path / "d.jsonl", [row("long", "a" * 5000 + ".png"), row("good", "good.png")])

    out = ovip("data", "check", data)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    (line,) = [x for x in out.stdout.splitlines() if "[image]" in x]
    assert line.startswith("  long  [image]  image file cannot be read (file name too long): ")
    assert line.endswith("(d.jsonl:1)") and len(line) < 400  # the name is shown cut in the middle

    # Training's own path to the data (`ovip train` loads and checks through it before any model loads).
    cfg = load(None, ["--train.data", str(data)])
    with pytest.raises(ValueError, match=r"long  \[image\]  image file cannot be read \(file name too long"):
        load_training_examples(cfg)
    cfg.train.skip_invalid = True
    examples, report = load_training_examples(cfg)
    assert [e.id for e in examples] == ["good"] and [r["id"] for r in report.records()] == ["long"]


@pytest.fixture
def specials(tmp_path):
    """{what: path} for paths that exist but are no regular file."""
    os.mkfifo(tmp_path / "fifo.jsonl")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    (tmp_path / "folder.jsonl").mkdir()
    return {
        "a FIFO": tmp_path / "fifo.jsonl",
        "a character device": tmp_path / "zero.json",
        "a character device ": tmp_path / "zero.jsonl",
        "a folder": tmp_path / "folder.jsonl",
    }


def test_data_check_refuses_a_data_file_that_is_no_regular_file(specials):
    """It used to hang on the FIFO, read /dev/zero until memory ran out and raise IsADirectoryError."""
    for what, path in specials.items():
        out = ovip("data", "check", path)
        assert out.returncode == 2 and out.stdout == "", (what, out.stdout, out.stderr[-2000:])
        assert out.stderr == f"ovip: error: data file is not a regular file ({what.strip()}): {path}\n"
        with pytest.raises(ValueError) as err:  # the loader `ovip train` uses says the same
            load_examples(path)
        assert f"ovip: error: {err.value}\n" == out.stderr
    out = ovip("data", "check", specials["a FIFO"].parent / "missing.jsonl")
    assert out.returncode == 2 and out.stderr.endswith(
        "data file not found: " + str(specials["a FIFO"].parent / "missing.jsonl") + "\n"
    )


def test_train_says_the_same_as_data_check(specials, tiny_world_recipe, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(tiny_world_recipe))
    fifo = specials["a FIFO"]
    out = ovip("train", "--config", recipe, "--train.data", fifo, "--train.output_dir", tmp_path / "run")
    assert out.returncode == 2, out.stderr[-2000:]
    assert (
        out.stderr.strip().splitlines()[-1]
        == f"ovip: error: data file is not a regular file (a FIFO): {fifo}"
    )


def test_a_json_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    """A sparse file one byte over the limit: refused from its size, so nothing is read."""
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(files.MAX_DATA_BYTES + 1)
    out = ovip("data", "check", big)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr[-2000:]
    assert f"ovip: error: {big}: 1,073,741,825 bytes, over the limit of 1,073,741,824 bytes" in out.stderr
    assert "MAX_DATA_BYTES" in out.stderr


def test_a_jsonl_line_over_the_size_limit_is_a_bad_record(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_DATA_BYTES", 100)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    good = json.dumps(row("a", "a.png"))
    long = json.dumps(row("long", "a.png", query="x" * 200))
    path = tmp_path / "d.jsonl"
    path.write_text(f"{good}\n{long}\n{good.replace('a.png', './a.png').replace('a', 'b', 1)}\n")
    first, bad, last = load_examples(path)
    assert (
        bad.source == bad.id == "d.jsonl:2"
        and bad.meta["load_error"] == "line 2 is longer than 100 bytes (ovip.data.files.MAX_DATA_BYTES)"
    )
    assert (first.id, last.id, last.source) == ("a", "b", "d.jsonl:3") and check_examples([first, last]).ok
    (tmp_path / "d.json").write_text(json.dumps([row("a", "a.png", query="x" * 200)]))
    with pytest.raises(ValueError, match=r"d.json: \d+ bytes, over the limit of 100 bytes for a .json file"):
        load_examples(tmp_path / "d.json")


def test_an_image_that_is_no_regular_file_is_named_for_what_it_is(tmp_path):
    """/dev/zero, a FIFO and `/` were all "image file not found"."""
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    rows = [
        row("device", "/dev/zero"),
        row("fifo", "fifo.png"),
        row("root", "/"),
        row("link", "zero.png"),
        row("missing", "missing.png"),
    ]
    out = ovip("data", "check", write_jsonl(tmp_path / "d.jsonl", rows))
    assert out.returncode == 1, out.stderr[-2000:]
    lines = [x.strip() for x in out.stdout.splitlines()[2:]]
    assert lines == [
        "device  [image]  image file is not a regular file (a character device): /dev/zero  (d.jsonl:1)",
        f"fifo  [image]  image file is not a regular file (a FIFO): {tmp_path / 'fifo.png'}  (d.jsonl:2)",
        "root  [image]  image file is not a regular file (a folder): /  (d.jsonl:3)",
        "link  [image]  image file is not a regular file (a character device): /dev/zero  (d.jsonl:4)",
        f"missing  [image]  image file not found: {tmp_path / 'missing.png'}  (d.jsonl:5)",
    ]
