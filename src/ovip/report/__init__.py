"""`ovip report`: an HTML view of run folders (curves, time per stage, negative-image gallery, evaluations).

Modules: `data` (run folders, read defensively), `results` (evaluation and experiment results), `figures`
(matplotlib), `gallery` (experiences), `page` (the HTML), `browser` (headless Chromium over the DevTools
protocol) and `screenshot` (`python -m ovip.report.screenshot REPORT.html OUT.png`).
"""

from ovip.report.page import build_report

__all__ = ["build_report"]
