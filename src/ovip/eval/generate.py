"""Answer benchmark questions with a policy: `make_generate_fn` and the resumable `generate_responses`.

Decoding is `EvalConfig`: the authors' evaluation samples at temperature 0.1, top_p 0.8 (the authors'
`svco-eval` code), so their numbers are slightly stochastic; `greedy: true` gives deterministic answers. Left out: the
authors' per-benchmark max_new_tokens (10 for AMBER-dis, 1024 for LLaVA-Bench); one `eval.max_new_tokens`
(384 by default) serves every benchmark here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ovip.config import EvalConfig
from ovip.eval.items import Item
from ovip.eval.responses import load_responses
from ovip.policy.model import Policy
from ovip.policy.rollout import sample_answers
from ovip.progress import Progress
from ovip.records import Answer

GenerateFn = Callable[
    ..., list[Answer]
]  # (images: list[PIL.Image], queries: list[str], seed=None) -> answers


def make_generate_fn(policy: Policy, eval_cfg: EvalConfig) -> GenerateFn:
    """`generate(images, queries, seed=None) -> [Answer]`, one answer per (image, query), in one batch.

    `seed` defaults to `eval_cfg.seed`; the i-th prompt of a call samples with seed `seed + i`
    (`ovip.policy.rollout`: a prompt's answer depends on its own seed only), so `generate_responses`, which
    passes `seed + position of the batch's first item`, samples each item with `seed + its position`
    whatever the batch size. The model is put in eval mode for the call (no LoRA dropout) and given back in
    the mode it had, so a training loop can evaluate its policy in between steps.
    """

    def generate(images: list[Image.Image], queries: list[str], seed: int | None = None) -> list[Answer]:
        model = policy.model
        was_training = model.training
        model.eval()
        try:
            out = sample_answers(
                model,
                policy.processor,
                images,
                queries,
                k=1,
                temperature=eval_cfg.temperature,
                top_p=eval_cfg.top_p,
                max_new_tokens=eval_cfg.max_new_tokens,
                seeds=[(eval_cfg.seed if seed is None else seed) + i for i in range(len(queries))],
                do_sample=not eval_cfg.greedy,
            )
        finally:
            model.train(was_training)
        return [group[0] for group in out]

    return generate


def answered_ids(path: str | Path, items: list[Item]) -> set[str]:
    """Ids (as strings) already answered in the JSONL `path`, validated against `items`.

    A last line without its newline is an answer cut off by an interruption: it is dropped from the file
    (and generated again). Any other problem (ids of another benchmark, duplicates) is one ValueError.
    """
    path = Path(path)
    if not path.exists():
        return set()
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        path.write_text(text, encoding="utf-8")
    if not text.strip():
        return set()
    return set(load_responses(path, [it.id for it in items], allow_missing=True))


def generate_responses(
    generate_fn: GenerateFn,
    items: list[Item],
    path: str | Path,
    batch_size: int,
    seed: int = 0,
    progress: bool = True,
) -> int:
    """Answer the items not yet in `path`, appending `{"id", "response"}` lines batch by batch.

    Each line also records whether the answer was `cut` at max_new_tokens. Returns how many answers were
    generated now. The batch that starts at item position p (in `items`
    order) is sampled with seed `seed + p`, its i-th item with `seed + p + i` (`make_generate_fn`), so a run
    resumed after an interruption samples exactly what an uninterrupted run would.
    """
    path = Path(path)
    done = answered_ids(path, items)
    pending = [(pos, it) for pos, it in enumerate(items) if str(it.id) not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for start in Progress(range(0, len(pending), batch_size), desc="generate", disable=not progress):
            chunk = pending[start : start + batch_size]
            images = [_open(it.image) for _, it in chunk]
            answers = generate_fn(images, [it.query for _, it in chunk], seed=seed + chunk[0][0])
            f.write(
                "".join(
                    json.dumps({"id": it.id, "response": a.text, "cut": a.cut}) + "\n"
                    for (_, it), a in zip(chunk, answers, strict=True)
                )
            )
            f.flush()  # a finished batch survives a crash of the next one
    return len(pending)


def _open(image: Path | bytes) -> Image.Image:
    """An item's image from its file, or from the encoded bytes a question file embeds."""
    with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as img:
        return img.convert("RGB")
