"""The questions a model answers for a benchmark: `load_items(benchmark, data_dir) -> [Item]`.

Generation reads the same data folder that scoring (`ovip.eval.run`) reads; `ovip.eval.layout` finds the
files, in the benchmarks' released layouts or ours, and the images (`images/`, AMBER's `image/`, or
`--images DIR`):

  amber_gen / amber_dis  query_generative.json / query_discriminative.json  [{"id", "image", "query"}]
                         (AMBER's data/query files); images AMBER_<n>.jpg
  chair / objecthal      questions.jsonl  {"id", "question", "image"} (image: a file name, e.g.
                         COCO_val2014_000000000042.jpg), or Object HalBench's released
                         obj_halbench_300_with_image.jsonl {"image_id", "question", "image": base64}; ids
                         are the "id"s, else the "image_id"s (which must then be unique)
  mmhal                  response_template.json; images named by each record's image_src (as
                         `huggingface-cli download Shengcao1006/MMHal-Bench` lays them out); ids 0..95
  llava_bench            questions.jsonl {"question_id", "image", "text"}; images 001.jpg ... 024.jpg
  textvqa / realworldqa  questions.jsonl, one item per line:
  mmstar / cvbench         {"id", "question", "image", "answer" | "answers", ["category"], ["source"]}
                         and images/<image>. "question" is the prompt exactly as the model sees it (options
                         and answer instruction included, as LLaVA's eval prompts write them); "answers" is
                         TextVQA's list of (10) human answers, "answer" the others' reference (an option
                         letter for MMStar / CV-Bench, "(B)" or "B"); "source" (ADE20K, COCO or Omni3D) is
                         required by CV-Bench, "category" optional (MMStar per-category accuracy)

`expected_ids` gives the ids a complete responses file holds (used to report partial files).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

from ovip.eval import amber, layout

GENERAL = ("textvqa", "realworldqa", "mmstar", "cvbench")  # general capability: questions.jsonl + images/


@dataclass(frozen=True)
class Item:
    """One benchmark question: `id` exactly as the responses file stores it; `image` the file to show, or
    its encoded bytes when the question file embeds them (Object HalBench's released file)."""

    id: int | str
    image: Path | bytes
    query: str


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _need(path: Path | None, what: str) -> Path:
    if path is None or not path.exists():
        raise FileNotFoundError(f"{path} is missing: {what} (see the layouts in docs/evaluation.md)")
    return path


def object_questions(data_dir: str | Path) -> list[dict] | None:
    """CHAIR / Object HalBench question records as {"id", "question", "image"}, or None without a question
    file. Records without "id" take their "image_id" (the released file's key), which must be unique."""
    path = layout.objecthal_questions(data_dir)
    if path is None:
        return None
    records = _jsonl(path)
    out = [{**r, "id": r["id"] if "id" in r else r.get("image_id")} for r in records]
    ids = [str(r["id"]) for r in out]
    if None in (r["id"] for r in out) or len(set(ids)) != len(ids):
        raise ValueError(f"{path}: every question needs a unique 'id' (or 'image_id')")
    return out


def _object_image(images: Path, value: str) -> Path | bytes:
    """A file name under `images`, or the base64-encoded image itself (the released Object HalBench file)."""
    if len(value) < 256 and (images / value).suffix:
        return images / value
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return images / value


def load_items(benchmark: str, data_dir: str | Path, images_dir: str | Path | None = None) -> list[Item]:
    """Every question of `benchmark` under `data_dir`, in the benchmark's order. Images are not opened."""
    data_dir = Path(data_dir)
    images = layout.images_dir(data_dir, images_dir)
    if benchmark in ("amber_gen", "amber_dis"):
        task = "generative" if benchmark == "amber_gen" else "discriminative"
        return [Item(q["id"], images / q["image"], q["query"]) for q in amber.load_queries(data_dir, task)]
    if benchmark in ("chair", "objecthal"):
        records = object_questions(data_dir)
        if records is None:
            raise FileNotFoundError(
                f"no question file in {data_dir}: one of {', '.join(layout.OBJECTHAL_QUESTIONS)}"
            )
        _check_image_keys(records, data_dir)
        return [Item(r["id"], _object_image(images, r["image"]), r["question"]) for r in records]
    if benchmark in GENERAL:
        path = _need(data_dir / "questions.jsonl", 'one {"id", "question", "image"} per line')
        records = _jsonl(path)
        _check_image_keys(records, path)
        return [Item(r["id"], images / r["image"], r["question"]) for r in records]
    if benchmark == "mmhal":
        records = json.loads(layout.mmhal_template(data_dir).read_text(encoding="utf-8"))
        return [
            Item(i, images / r["image_src"].rsplit("/", 1)[-1], r["question"]) for i, r in enumerate(records)
        ]
    if benchmark == "llava_bench":
        path = _need(data_dir / "questions.jsonl", "LLaVA-Bench's 60 questions")
        return [Item(q["question_id"], images / q["image"], q["text"]) for q in _jsonl(path)]
    raise ValueError(f"no question loader for benchmark {benchmark!r}")


def _check_image_keys(records: list[dict], where) -> None:
    no_image = [r.get("id") for r in records if "image" not in r]
    if no_image:
        raise ValueError(f"{where}: {len(no_image)} questions have no 'image' (ids: {_head(no_image)})")


def check_images(items: list[Item]) -> None:
    """Raise FileNotFoundError naming the ids whose image file is absent."""
    missing = [it for it in items if isinstance(it.image, Path) and not it.image.is_file()]
    if missing:
        folder = missing[0].image.parent
        raise FileNotFoundError(
            f"{len(missing)} of {len(items)} images are missing under {folder} "
            f"(ids: {_head([it.id for it in missing])})"
        )


def expected_ids(benchmark: str, data_dir: str | Path) -> list[str]:
    """The ids (as strings) a complete responses file answers; the same sources `evaluate_responses` uses."""
    data_dir = Path(data_dir)
    if benchmark in ("amber_gen", "amber_dis"):
        task = "generative" if benchmark == "amber_gen" else "discriminative"
        if layout.amber_query(data_dir, task) is not None:
            return [str(q["id"]) for q in amber.load_queries(data_dir, task)]
        data = amber.load_amber(data_dir)
        return [
            str(e["id"]) for e in data.annotations if (e["type"] == "generative") == (task == "generative")
        ]
    if benchmark in ("chair", "objecthal"):
        records = object_questions(data_dir)
        if records is not None:
            return [str(r["id"]) for r in records]
        return list(
            json.loads(
                _need(data_dir / "ground_truth.json", "the ground truth, or a question file").read_text(
                    encoding="utf-8"
                )
            )
        )
    if benchmark == "mmhal":
        return [str(i) for i in range(len(json.loads(layout.mmhal_template(data_dir).read_text())))]
    if benchmark == "llava_bench":
        return [str(q["question_id"]) for q in _jsonl(data_dir / "questions.jsonl")]
    if benchmark in GENERAL:
        return [str(q["id"]) for q in _jsonl(_need(data_dir / "questions.jsonl", 'one {"id", ...} per line'))]
    raise ValueError(f"unknown benchmark {benchmark!r}")


def _head(ids: list, show: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:show])
    return shown + (f", ... ({len(ids) - show} more)" if len(ids) > show else "")
