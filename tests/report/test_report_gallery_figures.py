"""Which experiences the gallery shows, and the figures' grouping and stage sums."""

import json

import numpy as np

from ovip.report import figures
from ovip.report.data import load_run
from ovip.report.gallery import Images, card, gallery, pick


def test_pick_worst_chosen_and_a_seeded_sample():
    experiences = [
        {"chosen_score": 6.0, "step": 0},
        {"chosen_score": 9.0, "step": 1},
        {"chosen_score": 6.0, "step": 3},  # ties: the later step first (a hacked judge shows late)
        {"chosen_score": 10.0, "step": 0, "fallback": True},  # the reference answer: its 10 is nominal
        {"chosen_score": None, "step": 2},  # non-finite scores are logged as null
        {"chosen_score": 7.0, "step": 5},
        {"step": 6},
    ]
    worst, sample = pick(experiences, n_random=3, n_worst=3, seed=0)
    assert worst == [2, 0, 5]
    assert len(sample) == 3 and sample == sorted(sample) and not set(sample) & set(worst)
    assert pick(experiences, 3, 3, seed=0) == (worst, sample)
    assert pick(experiences, 10, 0, seed=1) == ([], list(range(7)))


def test_card_escapes_text_and_marks_missing_images(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 64), (0, 128, 255)).save(tmp_path / "images" / "neg.png")
    e = {
        "query": "<b>is</b> there a cat?",
        "chosen": "no & none",
        "rejected": "a cat",
        "chosen_score": 8.0,
        "rejected_score": 2.0,
        "description": "a cat",
        "image_path": "/gone/pos.png",
        "negative_image_path": "/old/images/neg.png",
        "step": 4,
        "negative_seed": 17,
        "example_id": "ex1",
    }
    (tmp_path / "experiences.jsonl").write_text(json.dumps(e) + "\n")
    run = load_run(tmp_path)
    html = card(run, run.experiences[0], Images())
    assert "&lt;b&gt;is&lt;/b&gt; there a cat?" in html and "no &amp; none" in html
    assert 'data-step="4" data-chosen="8" data-rejected="2" data-margin="6"' in html
    assert 'class="img missing positive"' in html and "/gone/pos.png" in html
    assert '<img class="negative" src="data:image/png;base64,' in html and "negative_seed 17" in html
    page = gallery(run, 0, n_random=5, n_worst=5, seed=0, images=Images())
    assert page.count('class="card"') == 1  # among the worst, so not again in the sample
    assert '<select data-sort-target="worst-0"><option value="step:asc">' in page
    assert '<option value="chosen:asc" selected>' in page and 'id="sample-0"' not in page


def test_curve_groups_and_stage_seconds(tmp_path):
    lines = [
        {
            "step": 1,
            "prompts": 2,
            "loss": 1.0,
            "loss/text": 0.7,
            "rewards/margins": 0.1,
            "lr": 1e-6,
            "judge/failure_rate": 0.0,
            "custom/thing": 3,
            "time/sampling": 2.0,
            "time/forward": 1.0,
            "time/wall": 1e9,
        },
        {
            "step": 2,
            "prompts": 4,
            "loss": None,
            "time/sampling": None,
            "time/forward": 0.5,
            "time/post_processing": 0.5,
        },
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    run = load_run(tmp_path)
    groups = {gid: keys for gid, _, keys in figures.curve_groups([run])}
    assert groups == {
        "losses": ["loss", "loss/text"],
        "rewards": ["rewards/margins"],
        "judge": ["judge/failure_rate"],
        "optimizer": ["lr"],
        "other": ["custom/thing"],
    }
    assert figures.stage_seconds(run) == {
        "sampling": 2.0,
        "scoring": 0.0,
        "description": 0.0,
        "negative_image": 0.0,
        "forward": 1.5,
        "post_processing": 0.5,
        "service_wait": 0.0,
        "weight_sync": 0.0,
    }
    for image in (
        figures.curves([run, run], ["loss", "loss/text", "absent"], "prompts", "t"),
        figures.stage_share([run]),
        figures.stage_steps([run]),
    ):
        assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert np.isnan(run.column("loss")[1])
