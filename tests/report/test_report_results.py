"""Evaluation results and experiment folders found beside runs: tables, markdown, figures."""

import json

import pytest
from PIL import Image

from ovip.report import build_report
from ovip.report.markdown import to_html
from ovip.report.results import eval_tables, find_results


def summary(folder, benchmark, metrics, adapter=None):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(
        json.dumps({"benchmark": benchmark, "adapter": adapter, "metrics": metrics})
    )
    return folder / "summary.json"


def test_eval_summaries_make_a_before_after_table(tmp_path):
    after = summary(
        tmp_path / "ovip",
        "amber-gen",
        {"chair": 7.0, "cover": 91.5, "fluency": {"words": 12.25}},
        adapter="runs/q/checkpoints/step-000010/adapter",
    )
    before = summary(
        tmp_path / "base",
        "amber-gen",
        {"chair": 22.5, "cover": 77.0, "exact": {"chair": 22.4999}, "fluency": {"words": 14.0}},
    )
    summary(tmp_path / "other", "mmhal", {"score": 4.75})
    tables = eval_tables([after, before, tmp_path / "other" / "summary.json"])
    amber, mmhal = tables
    # the evaluation without an adapter (the model before training) comes first; change = after - before
    assert amber.columns == ["metric", "base (before)", "ovip (after: adapter)", "change"]
    assert amber.rows == [
        ["chair", "22.5", "7", "-15.5"],
        ["cover", "77", "91.5", "+14.5"],
        ["fluency/words", "14", "12.25", "-1.75"],
    ]
    assert mmhal.columns == ["metric", "other (before)"] and mmhal.rows == [["score", "4.75"]]


def test_a_quickstart_folder_is_reported_like_any_experiment(tmp_path):
    """`ovip quickstart` reports its runs (deep in the experiment folder) with the folder given as an eval path:
    its results.md is shown as an experiment, and a run left at the folder's top (the README's `ovip train`
    into the same folder) is not overlaid; a quickstart.json there is no longer read."""
    out = tmp_path / "quick"
    run = out / "ovip" / "pretrain-0" / "seed-3" / "run"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.7, "prompts": 2}) + "\n")
    (out / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5, "prompts": 2}) + "\n")
    (out / "results.md").write_text(
        "# Experiment `quickstart`\n\n| metric | base | ovip |\n| --- | --- | --- |\n"
    )
    (out / "quickstart.json").write_text(json.dumps({"before": {}, "runs": [], "hri": []}))
    html = build_report([run], out / "report.html", eval_paths=[out]).read_text()
    assert "Experiment <code>quickstart</code>" in html and "<th>ovip</th>" in html
    assert "<title>ovip report: run</title>" in html  # the quickstart's run only
    assert "before and after" not in html


def test_experiment_folder_is_picked_up(tmp_path):
    exp = tmp_path / "experiment"
    exp.mkdir()
    (exp / "results.json").write_text(json.dumps({"hri": {"ovip": 3.35}}))
    (exp / "results.md").write_text(
        "# Ablation <script>alert(1)</script>\n\nThe **image** loss matters.\n\n"
        "| method | HRI |\n| --- | ---: |\n| ovip | 3.35 |\n| text only | 1.20 |\n"
    )
    Image.new("RGB", (40, 30), (200, 30, 30)).save(exp / "hri.png")
    tables, experiments = find_results([tmp_path], [])
    assert tables == [] and [e.path for e in experiments] == [exp.resolve()]
    assert [f.name for f in experiments[0].figures] == ["hri.png"]
    html = build_report([exp]).read_text()
    assert 'id="experiments"' in html and "<td>text only</td><td>1.20</td>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert 'alt="hri.png"' in html and "&quot;ovip&quot;: 3.35" in html


def test_nothing_to_report_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to report"):
        build_report([tmp_path])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report([tmp_path / "missing"])


def test_markdown_subset():
    html = to_html(
        "## Title\ntext `a<b` and\nmore\n\n- one\n- **two**\n\n```\nx < y\n```\n|a|b|\n|-|-|\n|1|2|"
    )
    assert html.splitlines() == [
        "<h4>Title</h4>",
        "<p>text <code>a&lt;b</code> and more</p>",
        "<ul><li>one</li><li><b>two</b></li></ul>",
        "<pre>x &lt; y</pre>",
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>",
    ]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from ovip.cli import main

    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"ovip: error: nothing to report under {tmp_path}")
    assert main(["report", str(tmp_path), "--gallery", "-1"]) == 2
    assert "--gallery must be >= 0" in capsys.readouterr().err


def test_world_answers_before_and_after_side_by_side(tmp_path):
    """Two `ovip eval world` folders as the command writes them (summary.json and one <split>.jsonl per
    benchmark, from `evaluate_world_items`): before, a model that names the prior's absent partner; after, the
    oracle. The report's evaluation section shows a sample of each benchmark's items, the same ids in both,
    each row holding the query, the reference and both answers with what was counted."""
    import html as html_lib
    import re

    from ovip.config.world import EVAL_SPLITS, WorldConfig
    from ovip.records import Answer
    from ovip.world.bench import evaluate_world_items, write_items
    from ovip.world.build import build_world
    from ovip.world.parse import parse
    from ovip.world.splits import load_split

    cfg = WorldConfig(eval_sizes={s: 12 for s in EVAL_SPLITS})
    world = build_world(tmp_path / "world", cfg, splits=["amber_gen", "amber_dis"])
    partner = {a: b for a, b, _ in cfg.co_occurrence}
    table = {(ex.image.tobytes(), ex.query): ex for folder in world.values() for ex in load_split(folder)[0]}

    def model(edit):
        return lambda images, queries: [
            Answer(edit(table[(im.tobytes(), q)]), cut=False) for im, q in zip(images, queries, strict=True)
        ]

    def biased(ex):
        if ex.meta["task"] != "describe":
            return "yes."
        cats = set(parse(ex.reference).objects())
        extra = [partner[a] for a in cats if a in partner and partner[a] not in cats]
        return ex.reference[:-1] + "".join(f" and a small green {b}" for b in extra) + "."

    folders = {}
    for name, edit, adapter in (("base", biased, None), ("ovip", lambda ex: ex.reference, "runs/x/adapter")):
        metrics, items = evaluate_world_items(model(edit), world, progress=False)
        folders[name] = tmp_path / "eval" / name
        record = {"benchmark": "world", "adapter": adapter, "metrics": metrics}
        record["items"] = write_items(folders[name], items)
        (folders[name] / "summary.json").write_text(json.dumps(record))
    report = build_report([folders["base"]], tmp_path / "report.html", eval_paths=[folders["ovip"]])
    page = report.read_text()
    for split in ("amber_gen", "amber_dis"):
        title = f"ovip eval world: {split} answers (4 of 12, the same items in each evaluation)"
        assert title in page
        box = page[page.index(title) :]
        box = box[: box.index("</table>")]
        header = re.findall(r"<th>(.*?)</th>", box)
        assert header == [
            "id", "query", "reference",
            "base (before): answer", "base (before): counted", "ovip (after: adapter): answer",
            "ovip (after: adapter): counted",
        ]  # fmt: skip
        rows = [
            [html_lib.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(<td>.*?)</tr>", box)
        ]
        assert len(rows) == 4
        by_id = {ex.id: ex for ex in load_split(world[split])[0]}
        for item_id, query, reference, before, before_counted, after, after_counted in rows:
            ex = by_id[item_id]  # the same item in both columns
            assert (query, reference, before, after) == (ex.query, ex.reference, biased(ex), ex.reference)
            if split == "amber_gen":
                assert after_counted == "no hallucination"
                assert before_counted.startswith("hallucinated: ") or before == reference
            else:
                assert after_counted.startswith("right")
    # the metrics table is still there, before first
    assert "<th>base (before)</th><th>ovip (after: adapter)</th><th>change</th>" in page
