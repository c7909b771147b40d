"""`python docs/screenshot.py REPORT.html OUT.png`: a PNG of a report, as headless Chromium draws it.

The README's screenshots (docs/report.png, docs/report-gallery.png) are made with

    ovip quickstart
    python docs/screenshot.py runs/quickstart/report.html docs/report.png --max-height 1500
    python docs/screenshot.py runs/quickstart/report.html docs/report-gallery.png --start '#timing' --max-height 2000

Exits 1, writing nothing, if the page logged a console error or an uncaught exception.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' Chromium driver
from chromium import Chromium  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/screenshot.py", description=__doc__.splitlines()[0])
    p.add_argument("report", help="the HTML file")
    p.add_argument("output", help="the PNG to write")
    p.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels")
    p.add_argument("--height", type=int, default=900, help="viewport height in CSS pixels")
    p.add_argument("--full-page", action="store_true", help="the whole page, not only the viewport")
    p.add_argument("--max-height", type=int, help="cut the page at this height (CSS pixels)")
    p.add_argument("--start", metavar="SELECTOR", help="begin at this element, e.g. '#gallery'")
    args = p.parse_args(argv)
    with Chromium(width=args.width, height=args.height) as browser:
        page = browser.open(args.report)
        page.evaluate(
            "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(() => 1)"
        )
        errors = page.errors()
        if errors:
            print("the page logged errors:\n" + "\n".join(errors), file=sys.stderr)
            return 1
        out = page.screenshot(
            args.output, full_page=args.full_page, max_height=args.max_height, start=args.start
        )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
