"""`ovip report`: an HTML view of run folders (curves, time per stage, negative-image gallery, evaluations).

Modules: `data` (run folders, read defensively), `results` (evaluation and experiment results), `figures`
(matplotlib), `gallery` (experiences), `answers` (evaluation answers) and `page` (the HTML). The docs'
screenshots of a report are taken with `python docs/screenshot.py REPORT.html OUT.png`.
"""

from ovip.report.page import build_report

__all__ = ["build_report"]
