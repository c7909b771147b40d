"""Where an analysis writes: `<name>.json` (everything), `<name>.md` (the table) and `<name>.png` (the figure)."""

from __future__ import annotations

import json
from pathlib import Path


def cell(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(columns: list[str], rows: list[dict], digits: int = 2) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c), digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, name: str, data: dict, markdown: str, figure) -> dict[str, Path]:
    """Write `data` as JSON, `markdown` and the matplotlib `figure` (closed afterwards); returns the paths."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "png": out / f"{name}.png"}
    paths["json"].write_text(json.dumps(data, indent=1, default=str) + "\n")
    paths["md"].write_text(markdown)
    figure.savefig(paths["png"], dpi=120)
    plt.close(figure)
    return paths


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
