"""`ovip report` on a real (tiny) world run, opened in headless Chromium: no console errors, the figures and
the gallery's images are there and decoded (checked through the DOM), the gallery sorts, and a screenshot is
written. Without Chromium these tests skip, naming the command that installs it; with OVIP_REQUIRE_CHROMIUM=1
(which `.ci/run` sets, after installing Debian's `chromium`) they fail instead, so CI cannot pass without them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chromium import Chromium, find_chromium
from conftest import run_ovip
from PIL import Image

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


INSTALL = "apt-get install chromium"


@pytest.fixture(scope="module")
def chromium():
    try:
        return find_chromium()
    except FileNotFoundError as e:
        message = f"{e}: the report's browser tests need Chromium ({INSTALL} on Debian)"
        if os.environ.get("OVIP_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"{message}; OVIP_REQUIRE_CHROMIUM=1 makes its absence a failure")
        pytest.skip(f"{message}; OVIP_REQUIRE_CHROMIUM=1 makes its absence a failure")


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


def test_without_chromium_the_browser_tests_skip_unless_required(tmp_path):
    """This file's quickest browser test, in a pytest subprocess whose PATH holds no Chromium: skipped with the
    install command by default, a failure under OVIP_REQUIRE_CHROMIUM=1, as `.ci/run` sets it."""
    environ = {k: v for k, v in os.environ.items() if k not in ("OVIP_CHROMIUM", "OVIP_REQUIRE_CHROMIUM")}
    environ["PATH"] = os.path.dirname(sys.executable)  # the interpreter's folder, no browser in it
    assert not any(
        (Path(environ["PATH"]) / name).exists() for name in ("chromium", "chromium-browser", "google-chrome")
    )
    command = [sys.executable, "-m", "pytest", "-rs", "-q", __file__, "-k", "test_console_errors_are_caught"]
    tests = Path(__file__).resolve().parents[1]
    default = subprocess.run(
        command, env=environ, cwd=tests.parent, capture_output=True, text=True, timeout=300
    )
    assert default.returncode == 0 and "1 skipped" in default.stdout, default.stdout[-3000:]
    assert INSTALL in default.stdout and "OVIP_REQUIRE_CHROMIUM=1" in default.stdout
    required = subprocess.run(
        command,
        env={**environ, "OVIP_REQUIRE_CHROMIUM": "1"},
        cwd=tests.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert required.returncode == 1 and "1 error" in required.stdout, required.stdout[-3000:]
    assert INSTALL in required.stdout
    ci = (tests.parent / ".ci" / "run").read_text()
    assert "export OVIP_REQUIRE_CHROMIUM=1" in ci
