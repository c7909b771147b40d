"""`ovip report` on a real (tiny) world run, opened in headless Chromium: no console errors, the figures and
the gallery's images are there and decoded (checked through the DOM), the gallery sorts, and a screenshot is
written. Chromium is required: without it these tests fail (CI installs Debian's `chromium`)."""

import json

import pytest
from conftest import run_ovip
from PIL import Image

from ovip.report.browser import Chromium, find_chromium

DECODED = "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(() => true)"
STATE = """(() => ({
  figures: [...document.querySelectorAll('figure.plot[data-figure]')].map(f => f.dataset.figure),
  images: document.images.length,
  broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
  cards: document.querySelectorAll('.card').length,
  positives: document.querySelectorAll('.card img.positive').length,
  negatives: [...document.querySelectorAll('.card img.negative')].filter(i => i.naturalWidth > 0).length,
  missing: document.querySelectorAll('.card .missing').length,
  evaluation: [...document.querySelectorAll('#evaluation h3')].map(h => h.textContent),
  experiment: document.querySelectorAll('.experiment .md table td').length,
  steps: [...document.querySelectorAll('.cards')[0].children].map(c => parseFloat(c.dataset.step)),
}))()"""
SORT = """(() => {
  const s = document.querySelector('select[data-sort-target]');
  s.value = 'step:desc';
  s.dispatchEvent(new Event('change'));
  return [...document.getElementById(s.dataset.sortTarget).children].map(c => parseFloat(c.dataset.step));
})()"""
AXIS = """(() => {
  document.querySelector('button[data-axis=prompts]').click();
  const shown = cls => getComputedStyle(document.querySelector('#fig-losses img.' + cls)).display;
  return [shown('x-step'), shown('x-prompts')];
})()"""


@pytest.fixture(scope="module")
def chromium():
    try:
        return find_chromium()
    except FileNotFoundError as e:
        pytest.fail(f"{e}: the report's browser tests need Chromium, they do not skip")


def test_report_of_a_world_run_in_chromium(chromium, tiny_world, uninterrupted_run, tmp_path):
    root, recipe, environ = tiny_world
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    (experiment / "results.md").write_text("| method | HRI |\n| --- | --- |\n| OViP | 3.35 |\n")
    Image.new("RGB", (60, 40), (0, 90, 200)).save(experiment / "figure.png")
    (tmp_path / "eval-base").mkdir()
    (tmp_path / "eval-base" / "summary.json").write_text(
        json.dumps({"benchmark": "world", "adapter": None, "metrics": {"amber_gen": {"chair": 22.0}}})
    )
    report = tmp_path / "out" / "report.html"
    out = run_ovip(
        [
            "report",
            str(uninterrupted_run),
            str(experiment),
            "--eval",
            str(tmp_path / "eval-base"),
            "-o",
            str(report),
        ],
        environ,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == str(report)
    experiences = (uninterrupted_run / "experiences.jsonl").read_text().splitlines()

    with Chromium(width=1280, height=900) as browser:
        page = browser.open(report)
        assert page.evaluate(DECODED)
        state = page.evaluate(STATE)
        assert page.errors() == []
        assert {
            "losses",
            "rewards",
            "judge",
            "pairs",
            "rollout",
            "optimizer",
            "time-share",
            "time-steps",
        } <= set(state["figures"])
        assert state["broken"] == []
        assert state["cards"] == min(len(experiences), 24 + 12)
        assert state["positives"] == state["negatives"] == state["cards"] and state["missing"] == 0
        assert state["evaluation"] == ["ovip eval world"] and state["experiment"] == 2
        assert state["steps"] == sorted(state["steps"])  # sorted on load as the control says (step ↑)
        order = page.evaluate(SORT)
        assert len(order) > 1 and order == sorted(order, reverse=True)
        assert page.evaluate(AXIS) == ["none", "block"]
        shot = page.screenshot(tmp_path / "report.png", full_page=True)
        assert page.errors() == []
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width == 1280 and im.height > 2000


def test_console_errors_are_caught(chromium, tmp_path):
    """The check above can fail: an uncaught exception, console.error and a missing file are all reported."""
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        '<img src="missing.png"><script>console.error("broken"); notDefined();</script>'
        "</body></html>"
    )
    with Chromium() as browser:
        page = browser.open(page_file)
        errors = page.errors()
    assert any(e.startswith("Uncaught ReferenceError: notDefined is not defined") for e in errors), errors
    assert "console.error: broken" in errors
    assert any("missing.png" in e for e in errors), errors
