"""The experience gallery: for each experience, the original image I+ beside the negative image I- (Eq. 3),
the query, the chosen and rejected answers A+ / A- with the judge's scores (Eq. 1-2), the description T- the
describer wrote, and the negative image's seed.

Two selections per run: the experiences whose chosen answer scored lowest (a policy that learns to please the
judge shows there first: chosen answers that barely pass the quality threshold) and a seeded random sample.
Cards carry their step and scores as data attributes; the page's script sorts them.
"""

from __future__ import annotations

import base64
import html
import io
import random

from PIL import Image

from ovip.report.data import Run, number

THUMBNAIL = 256  # longest side of an embedded image, in pixels


def pick(experiences: list[dict], n_random: int, n_worst: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """(indices of the `n_worst` lowest chosen scores, a random sample of `n_random` of the others); reference
    fallbacks (chosen = the reference answer) are not among the worst, their score is nominal."""
    scored = [
        i
        for i, e in enumerate(experiences)
        if number(e.get("chosen_score")) is not None and not e.get("fallback")
    ]
    scored.sort(
        key=lambda i: (number(experiences[i]["chosen_score"]), -(number(experiences[i].get("step")) or 0))
    )
    worst = scored[:n_worst]
    rest = sorted(set(range(len(experiences))) - set(worst))
    sample = sorted(random.Random(seed).sample(rest, min(n_random, len(rest))))
    return worst, sample


class Images:
    """Data URLs of images, each file encoded once (an image is shared by all the experiences of a prompt)."""

    def __init__(self, max_side: int = THUMBNAIL):
        self.max_side, self.cache = max_side, {}

    def url(self, path) -> str | None:
        if path is None:
            return None
        if path not in self.cache:
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    im.thumbnail((self.max_side, self.max_side))
                    small = max(im.size) <= 128
                    buf = io.BytesIO()
                    im.save(buf, format="PNG" if small else "JPEG", quality=85)
                mime = "image/png" if small else "image/jpeg"
                self.cache[path] = f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"
            except (OSError, ValueError, Image.DecompressionBombError):
                self.cache[path] = None
        return self.cache[path]


def _image(images: Images, run: Run, recorded, role: str, label: str) -> str:
    url = images.url(run.image(recorded))
    if url is None:
        return (
            f'<div class="img missing {role}">{label}: not found<br><code>{html.escape(str(recorded))}</code>'
            "</div>"
        )
    return (
        f'<figure class="img"><img class="{role}" src="{url}" alt="{label}" title="{html.escape(str(recorded))}">'
        f"<figcaption>{label}</figcaption></figure>"
    )


def _attr(value) -> str:
    x = number(value)
    return "" if x is None else f"{x:g}"


def card(run: Run, e: dict, images: Images) -> str:
    chosen, rejected = number(e.get("chosen_score")), number(e.get("rejected_score"))
    margin = None if chosen is None or rejected is None else chosen - rejected
    esc = lambda key: html.escape(str(e.get(key, "")))  # noqa: E731
    fallback = ' <span class="tag">reference fallback</span>' if e.get("fallback") else ""
    return (
        f'<div class="card" data-step="{_attr(e.get("step"))}" data-chosen="{_attr(chosen)}" '
        f'data-rejected="{_attr(rejected)}" data-margin="{_attr(margin)}">'
        f'<div class="pair">{_image(images, run, e.get("image_path"), "positive", "I+ original")}'
        f"{_image(images, run, e.get('negative_image_path'), 'negative', 'I- negative')}</div>"
        f'<div class="meta">step {esc("step")} · {esc("example_id")} · negative_seed {esc("negative_seed")}</div>'
        f'<div class="q"><b>Q</b> {esc("query")}</div>'
        f'<div class="a plus"><b>A+</b> <span class="score">{_attr(chosen) or "-"}</span>{fallback} '
        f"{esc('chosen')}</div>"
        f'<div class="a minus"><b>A-</b> <span class="score">{_attr(rejected) or "-"}</span> {esc("rejected")}</div>'
        f'<div class="t"><b>T-</b> {esc("description")}</div></div>'
    )


SORTS = [
    ("step", "asc", "step ↑"),
    ("step", "desc", "step ↓"),
    ("chosen", "asc", "A+ score ↑"),
    ("chosen", "desc", "A+ score ↓"),
    ("rejected", "asc", "A- score ↑"),
    ("margin", "asc", "score margin ↑"),
    ("margin", "desc", "score margin ↓"),
]


def section(
    run: Run, gid: str, title: str, indices: list[int], images: Images, order: str = "step:asc"
) -> str:
    """Cards of `indices` under a sort control set to `order`; the page's script sorts them on load."""
    if not indices:
        return ""
    options = "".join(
        f'<option value="{key}:{direction}"{" selected" * (order == f"{key}:{direction}")}>{label}</option>'
        for key, direction, label in SORTS
    )
    cards = "".join(card(run, run.experiences[i], images) for i in indices)
    return (
        f"<h4>{html.escape(title)} ({len(indices)})</h4>"
        f'<label class="sort">sort by <select data-sort-target="{gid}">{options}</select></label>'
        f'<div class="cards" id="{gid}">{cards}</div>'
    )


def gallery(run: Run, index: int, n_random: int, n_worst: int, seed: int, images: Images) -> str:
    """The gallery of one run (the empty string when it has no experiences)."""
    if not run.experiences:
        return ""
    worst, sample = pick(run.experiences, n_random, n_worst, seed)
    return (
        f'<div class="gallery" data-run="{html.escape(run.name)}"><h3>{html.escape(run.name)}: '
        f"{len(run.experiences)} experiences</h3>"
        + section(run, f"worst-{index}", "lowest-scored chosen answers A+", worst, images, "chosen:asc")
        + section(run, f"sample-{index}", "random sample", sample, images)
        + "</div>"
    )
