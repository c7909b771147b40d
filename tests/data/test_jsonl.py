"""Tests for ovip.data.jsonl: ovip's own format (id, image, query, reference)."""

import json

from PIL import Image

from ovip.data.jsonl import load_jsonl


def test_loads_relative_and_absolute_paths_and_keeps_extra_fields(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "a.png")
    elsewhere = tmp_path / "b.png"
    Image.new("RGB", (4, 4)).save(elsewhere)
    rows = [
        {"id": "a", "image": "images/a.png", "query": "What?", "reference": "A cat.", "split": "train"},
        {"id": 7, "image": str(elsewhere), "query": "Where?", "reference": "Left."},
    ]
    path = tmp_path / "data" / "train.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    rows[0]["image"] = "../images/a.png"  # relative to the file, not to the working directory
    path.write_text("\n".join(json.dumps(r) for r in rows))
    a, b = load_jsonl(path)
    assert (a.id, a.query, a.reference, a.meta) == ("a", "What?", "A cat.", {"split": "train"})
    assert a.image_path == str(tmp_path / "images" / "a.png") and a.image is None
    assert (b.id, b.image_path) == ("7", str(elsewhere))


def test_bad_lines_become_flagged_examples(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "ok", "image": "x.png", "query": "q", "reference": "r"}\n{not json\n[1, 2]\n{"id": "n"}\n'
    )
    ok, broken, not_object, empty = load_jsonl(path)
    assert ok.meta == {} and ok.id == "ok"
    assert broken.id == "d.jsonl:2" and "invalid JSON" in broken.meta["load_error"]
    assert not_object.id == "d.jsonl:3" and not_object.meta["load_error"] == "not an object"
    assert (empty.id, empty.query, empty.reference, empty.meta["image_error"]) == ("n", "", "", "no image")
