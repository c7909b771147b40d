"""Tests for ovip.data.trl: TRL conversational vision preference records."""

import json

from PIL import Image

from ovip.data.trl import load_trl


def test_conversational_and_string_prompts(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "cat.jpg")
    conversational = {
        "prompt": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": "What animal is this?"}],
            },
        ],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "A dog."}]}],
        "images": ["cat.jpg"],
    }
    plain = {
        "id": "p",
        "prompt": "<image>What colour?",
        "chosen": "Grey.",
        "images": [{"bytes": None, "path": "cat.jpg"}],
    }
    path = tmp_path / "trl.jsonl"
    path.write_text(json.dumps(conversational) + "\n" + json.dumps(plain) + "\n")
    first, second = load_trl(path)
    assert (first.id, first.query, first.reference) == ("trl.jsonl:1", "What animal is this?", "A cat.")
    assert first.image_path == str(tmp_path / "cat.jpg") and first.meta == {"rejected": "A dog."}
    assert (second.id, second.query, second.reference) == ("p", "What colour?", "Grey.")
    assert second.image_path == str(tmp_path / "cat.jpg")
