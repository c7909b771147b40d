"""Tests for ovip.data.sharegpt: the authors' LLaMA-Factory records (notes §1.4)."""

import json

from PIL import Image

from ovip.data.sharegpt import load_sharegpt


def test_authors_record(tmp_path):
    (tmp_path / "ovip_images").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "ovip_images" / "x1.jpg")
    record = {
        "conversations": [{"from": "human", "value": "<image>\nGive a thorough description of the image."}],
        "chosen": {"from": "gpt", "value": "A cat on a sofa. "},
        "rejected": {"from": "gpt", "value": "A dog on a sofa."},
        "images": ["ovip_images/x1.jpg", "ovip_images/x1.jpg"],
    }
    broken = {"conversations": 5, "chosen": {"value": "x"}, "images": []}
    path = tmp_path / "ovip_sample.json"
    path.write_text(json.dumps([record, dict(record, id="named"), broken]))
    first, named, bad = load_sharegpt(path)
    assert first.id == "ovip_sample.json:1" and named.id == "named"
    assert first.query == "Give a thorough description of the image."
    assert first.reference == "A cat on a sofa."
    assert first.image_path == str(tmp_path / "ovip_images" / "x1.jpg")
    assert first.meta == {"rejected": "A dog on a sofa."}
    assert bad.id == "ovip_sample.json:3" and "cannot convert record" in bad.meta["load_error"]
